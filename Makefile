# boxkube: `make install` once, `make test` to run the tests.
# `make test` installs first when nothing is installed yet or pyproject.toml
# changed since the last install (so a fresh clone needs only `make test`).
# `make install` also installs the host programs that `boxkube build node-image`
# needs (debootstrap, busybox-static) with apt-get when they are missing.

PYTHON ?= python3
INSTALLED := build/.installed
PYTEST_ARGS ?=

.PHONY: install test clean

install:
	$(PYTHON) -m pip install --disable-pip-version-check -e '.[test]'
	@# debootstrap and busybox-static, for `boxkube build node-image` (apt-get when missing)
	sh node-image/install-host-packages.sh
	@mkdir -p $(dir $(INSTALLED))
	@touch $(INSTALLED)

$(INSTALLED): pyproject.toml node-image/install-host-packages.sh
	$(MAKE) install

test: $(INSTALLED)
	$(PYTHON) -m pytest -q tests $(PYTEST_ARGS)

# Benchmark figures (not a test): `make bench` runs every bench in turn (about 10 minutes);
# BENCH_ARGS goes to api.py, e.g. `make bench BENCH_ARGS=--quick` for a shorter API run.
.PHONY: bench
bench: $(INSTALLED)
	$(PYTHON) bench/api.py $(BENCH_ARGS)
	$(PYTHON) bench/scheduler.py
	$(PYTHON) bench/pod_startup.py
	$(PYTHON) bench/self_healing.py
	$(PYTHON) bench/docker_cluster.py

clean:
	rm -rf build .pytest_cache .hypothesis *.egg-info
