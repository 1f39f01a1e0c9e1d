# Thin targets over scripts/. Every target bootstraps .venv first.
.PHONY: install demo test test-core lint typecheck bench services docs generated-docs clean

install:
	@bash scripts/bootstrap.sh

demo: install
	@bash scripts/demo.sh

test: install
	@bash scripts/services.sh
	@bash scripts/test.sh

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: install
	.venv/bin/mypy

bench: install
	@bash scripts/services.sh
	.venv/bin/python -m scripts.bench
	.venv/bin/python -m scripts.bench.scaling

services:
	@bash scripts/services.sh

# Rewrites the reference sections of docs/ (CLI, configuration, driver settings) from the code;
# a test fails when the committed text is stale.
generated-docs: install
	.venv/bin/python -m scripts.docs.generate

docs: install
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
