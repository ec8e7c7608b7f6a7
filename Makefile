.PHONY: setup run test bench
setup:
	scripts/setup.sh
run:
	scripts/run.sh
test:
	scripts/test.sh
bench:
	scripts/setup.sh && .venv/bin/python -m bench
