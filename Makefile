# DOTS Family Mode. Every target installs what is missing first
# (scripts/install.sh is idempotent and needs root).
.PHONY: run test deps

VENV := .venv

deps:
	scripts/install.sh

run: deps
	scripts/run.sh

test: deps
	$(VENV)/bin/pytest -ra
