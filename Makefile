# oauth-facade: `make run` starts the facade on embedded defaults, `make test` runs the whole suite.
# `make run` installs only what serving needs (the package and its `speed` extra); the targets that run
# tests, lint or benchmarks add the `test` extra (pytest, ruff, the MCP SDK...).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.DEFAULT_GOAL := help
.PHONY: help run test test-fast interop lint system-deps redis-server interop-deps bench bench-gateway clean \
	test-containers container-deps test-mutants soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The facade depends on the verifier distribution in verifier/ (not on PyPI yet): both installed in one pip run.
$(STAMP): pyproject.toml verifier/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./verifier -e '.[speed]'
	touch $(STAMP)

# The demo MCP server (proxy/devmcp) on 127.0.0.1:8081, behind the facade's gateway at http://127.0.0.1:8080/mcp.
DEMO_GATEWAY := http://127.0.0.1:8080/mcp=http://127.0.0.1:8081/mcp

run: $(STAMP) ## Start the facade on http://127.0.0.1:8080 (embedded store, dev key, dev IdP, demo MCP server at /mcp)
	@$(PY) -m proxy.devmcp --host 127.0.0.1 --port 8081 & demo=$$!; trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	PROXY_GATEWAY_BACKENDS="$${PROXY_GATEWAY_BACKENDS-$(DEMO_GATEWAY)}" $(VENV)/bin/oauth-facade serve

# Every program a test starts, as PROGRAM=DEBIAN-PACKAGE. tests/test_programs.py keeps this list equal to the
# programs the tests look up (tests/programs.py), so a program installed by hand cannot hide a missing step here.
TEST_PROGRAMS := redis-server=redis-server redis-cli=redis-tools nginx=nginx caddy=caddy node=nodejs

system-deps: ## Install the programs the tests start, where missing (Debian/Ubuntu)
	@missing=$$(for pair in $(TEST_PROGRAMS); do command -v "$${pair%%=*}" >/dev/null || echo "$${pair#*=}"; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing:" $$missing; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@for pair in $(TEST_PROGRAMS); do command -v "$${pair%%=*}" >/dev/null || { echo "$${pair%%=*} is still missing"; exit 1; }; done

redis-server: system-deps ## Install a real redis-server (and the other test programs) where missing
	@redis-server --version

# What the suite, lint and bench need on top of serving.
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e './verifier[mcp]' -e '.[test,speed]'
	touch $(TEST_STAMP)

interop-deps: ## Install node (where missing) and the interop suite's npm packages, pinned by package-lock.json
	@command -v npm >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("node " + process.versions.node + " is too old for oidc-provider: install Node.js >= 20.19"); process.exit(1); }'
	cd tests/interop/js && npm ci --silent --no-audit --no-fund

interop: $(TEST_STAMP) system-deps interop-deps ## Only the interop suite: oauth4webapi and the MCP Python SDK via oidc-provider
	$(PY) -m pytest -m interop tests/interop $(PYTEST_ARGS)

test: $(TEST_STAMP) system-deps interop-deps ## Install what the tests need and run the whole suite
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

test-fast: $(TEST_STAMP) ## The suite without the third-party client interop tests
	$(PY) -m pytest -m 'not interop' $(PYTEST_ARGS)

# The container tests (tests/containers; `make test-containers`, never part of `make test`: they need root and
# minutes). The programs they start, as PROGRAM=SOURCE: a Debian package, or pip:REQUIREMENT of the
# `containers` extra (pyproject.toml), installed into the venv. tests/test_programs.py keeps this list equal to
# the programs tests/containers looks up. The engine also needs CONTAINER_PACKAGES: runc (crun refuses these
# machines' hybrid cgroups), debootstrap (tests/containers/prepare.sh makes the base images) and aardvark-dns
# (compose service names). Recipe measured on these machines: /work/shared/notes/containers.md.
CONTAINER_PROGRAMS := podman=podman podman-compose=pip:podman-compose
CONTAINER_PACKAGES := podman runc debootstrap aardvark-dns
CONTAINER_STAMP := $(VENV)/.installed-containers
CONTAINERS_CONF := /etc/containers/containers.conf
# No default ulimits (setrlimit is refused in these machines' containers); containers get no copy of the host's
# /etc/hosts (its `127.0.0.1 devidp.localhost`, added below for the host's browser and tests, would send the
# facade's calls to the dev IdP to the facade container's own loopback); runc.
CONTAINERS_CONF_TEXT := [containers]\ndefault_ulimits = []\nbase_hosts_file = "none"\n\n[engine]\nruntime = "runc"\n

$(CONTAINER_STAMP): $(TEST_STAMP)
	$(PY) -m pip install --quiet -e '.[test,speed,containers]'
	touch $(CONTAINER_STAMP)

container-deps: $(CONTAINER_STAMP) ## podman set up for the container tests, where missing (root or sudo; Debian/Ubuntu)
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	missing=$$(for p in $(CONTAINER_PACKAGES); do dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q 'ok installed' || echo "$$p"; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi; \
	if [ ! -e $(CONTAINERS_CONF) ]; then \
	  echo "writing $(CONTAINERS_CONF)"; \
	  printf '$(CONTAINERS_CONF_TEXT)' | $$SUDO tee $(CONTAINERS_CONF) >/dev/null; \
	elif ! grep -Eq '^default_ulimits *= *\[\]' $(CONTAINERS_CONF) || ! grep -Eq '^base_hosts_file *= *"none"' $(CONTAINERS_CONF) \
	     || ! grep -Eq '^runtime *= *"runc"' $(CONTAINERS_CONF); then \
	  echo "$(CONTAINERS_CONF) exists: it needs"; printf '$(CONTAINERS_CONF_TEXT)'; exit 1; \
	fi; \
	if ! grep -Eq '^127\.0\.0\.1[[:space:]].*\bdevidp\.localhost\b' /etc/hosts; then \
	  echo "adding 127.0.0.1 devidp.localhost to /etc/hosts (the compose dev IdP's issuer host)"; \
	  echo '127.0.0.1 devidp.localhost' | $$SUDO tee -a /etc/hosts >/dev/null; \
	fi
	@for pair in $(CONTAINER_PROGRAMS); do name=$${pair%%=*}; command -v "$$name" >/dev/null || [ -x "$(VENV)/bin/$$name" ] \
	  || { echo "$$name is still missing"; exit 1; }; done

test-containers: container-deps ## Build the image, run the compose stack under podman and test it (root; minutes)
	@[ "$$(id -u)" = 0 ] || { echo "make test-containers runs podman as root (debootstrap, published ports): use sudo"; exit 1; }
	tests/containers/prepare.sh
	@$(PY) -m pytest tests/containers $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no container tests: failing on purpose"; exit 1; fi; exit $$rc
# Each defence mutant of tests/mutants/catalogue.toml applied in a scratch copy of the tree, its tests run:
# fails unless every one is killed (docs/mutants.md). MUTANTS_ARGS e.g. `--only code-single-use --jobs 1`.
test-mutants: $(TEST_STAMP) system-deps ## Remove each defence in turn (tests/mutants/catalogue.toml); fail unless a test catches it
	$(PY) -m tests.mutants.runner $(MUTANTS_ARGS)

lint: $(TEST_STAMP) ## ruff
	$(VENV)/bin/ruff check proxy tests verifier bench

bench: $(TEST_STAMP) system-deps ## Run the benchmark suite (writes bench/results/)
	$(PY) -m bench $(BENCH_ARGS)

bench-gateway: $(TEST_STAMP) system-deps ## The gateway's overhead per request and 1,000 held SSE streams (bench/results/)
	$(PY) -m bench.gateway $(BENCH_ARGS)

SOAK_SECONDS ?= 180
soak: $(TEST_STAMP) system-deps ## Replicas on Redis Sentinel under faults for SOAK_SECONDS (default 180; bench/results/)
	$(PY) -m bench.soak --duration $(SOAK_SECONDS) $(SOAK_ARGS)

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
