# Day-to-day commands; CI's full path (fresh venv from the README's command) is `make ci`.
.PHONY: test unit lint format docs ci

test:
	python -m pytest tests

unit:
	python -m pytest tests/unit_tests

lint:
	ruff check .
	ruff format --check .
	mypy langchain_intercascade
	lint-imports

format:
	ruff check --fix .
	ruff format .

docs:
	mkdocs build --strict

ci:
	bash .ci/run
