"""A Django app for the tests (installed by conftest's settings)."""
