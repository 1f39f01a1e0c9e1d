"""Documentation tooling: reference pages generated from the code, and the mkdocs hook."""
