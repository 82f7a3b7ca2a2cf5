# The offline local stack (DESIGN.md §7), the ASL validation, the end-to-end tests and the demo.
#
# Python and Node tools live in project-local, git-ignored environments under .venv/, built
# from pinned files and keyed on their hash (a changed pin rebuilds, an unchanged one is a
# no-op). The stack's own state (pids, logs, outputs.json) is under .local-stack/.

STACK_VENV := $(VENV_DIR)/stack
STACK_PYTHON := $(STACK_VENV)/bin/python
STACK_REQUIREMENTS := $(ROOT)/local/requirements.txt
STACK_STAMP := $(STACK_VENV)/.requirements-$(firstword $(shell sha256sum $(STACK_REQUIREMENTS) 2>/dev/null))
NODE_DIR := $(VENV_DIR)/node
NODE_LOCK := $(ROOT)/local/node/package-lock.json
NODE_STAMP := $(NODE_DIR)/.lock-$(firstword $(shell sha256sum $(NODE_LOCK) 2>/dev/null))
ASL_VALIDATOR := $(NODE_DIR)/node_modules/.bin/asl-validator
ASL_FILE := $(ROOT)/statemachine/egress_workflow.asl.json
STACK := PYTHONPATH=$(ROOT)/local $(STACK_PYTHON) -m egress_local
STACK_DIR ?= $(or $(EGRESS_STACK_DIR),$(ROOT)/.local-stack)
E2E_TEST_THREADS ?= 4

.PHONY: setup stack-up stack-down stack-status stack-outputs stack-env validate-asl test-e2e demo swb-submit

$(STACK_STAMP): $(STACK_REQUIREMENTS)
	@echo "setup: python environment for the local stack ($(STACK_VENV))"
	rm -rf $(STACK_VENV)
	python3 -m venv $(STACK_VENV)
	$(STACK_VENV)/bin/pip install --quiet --disable-pip-version-check --no-input -r $(STACK_REQUIREMENTS)
	touch $@

$(NODE_STAMP): $(NODE_LOCK) $(ROOT)/local/node/package.json
	@echo "setup: node tools ($(NODE_DIR))"
	rm -rf $(NODE_DIR)
	mkdir -p $(NODE_DIR)
	cp $(ROOT)/local/node/package.json $(NODE_LOCK) $(NODE_DIR)/
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(STACK_STAMP) $(NODE_STAMP) $(CARGO_LAMBDA) ## install the local stack's tools into .venv/ (python, node, cargo-lambda)

validate-asl: $(NODE_STAMP) ## validate the state machine definition with asl-validator
	$(ASL_VALIDATOR) --json-path $(ASL_FILE)

stack-up: setup build-debug ## start the local stack (idempotent) and provision it; see README.md, "Running it locally"
	$(STACK) up

stack-down: ## stop the local stack (only the processes it started)
	@if [ -x $(STACK_PYTHON) ]; then $(STACK) down; else echo "[stack] not set up"; fi

stack-status: ## is the local stack up? (exit 0 up, 3 down, 1 partly running)
	@if [ -x $(STACK_PYTHON) ]; then $(STACK) status; else echo "[stack] not set up"; exit 3; fi

stack-outputs: ## print the running stack's names, ARNs and endpoint
	@$(STACK) outputs

stack-env: ## print `export` lines for AWS tools: eval "$$(make -s stack-env)"
	@$(STACK) env

swb-submit: ## submit an egress request to the running stack as SWB does (MODE=single|dual)
	$(STACK) swb-submit --mode $(or $(MODE),single)

# The e2e suite always runs against a stack it starts itself, on the binaries just built (a
# stack left running would serve older binaries: `cargo lambda watch --ignore-changes`), and
# always stops it, pass or fail.
# Reviewers act through the GraphQL API (local/appsync, started with the stack), so the
# workflow paths are driven exactly as the web app drives them; the API's own tests
# (feature e2e-api) run against the same stack.
test-e2e: setup api-setup validate-asl build-debug ## end-to-end tests (workflow + reviewer API) against a fresh local stack (started and stopped here)
	PYTHONPATH=$(ROOT)/local $(STACK_PYTHON) -m unittest discover --start-directory $(ROOT)/local/tests
	$(CARGO) test -p e2e-tests --features e2e,e2e-api --locked --no-run
	@if $(STACK) status >/dev/null 2>&1; then echo "[stack] restarting the running stack so it serves the current build"; fi
	@$(API) down >/dev/null; $(STACK) down >/dev/null
	@rm -rf $(STACK_DIR)/e2e-timings
	@trap '$(API) down; $(STACK) down' EXIT; \
	  started=$$(date +%s); \
	  $(STACK) up; \
	  $(API) up; \
	  (cd $(ROOT)/local/tests && EGRESS_REQUIRE_STACK=1 PYTHONPATH=$(ROOT)/local $(STACK_PYTHON) -m unittest -q test_webapp_env.LiveStackTest); \
	  up=$$(date +%s); \
	  $(CARGO) test -p e2e-tests --features e2e,e2e-api --locked -- --test-threads $(E2E_TEST_THREADS) || { \
	    status=$$?; \
	    echo "e2e: failed; the local AWS's server errors (whole logs in $(STACK_DIR)/logs):"; \
	    grep -hE '" 5[0-9][0-9] -|^[A-Za-z_.]+(Error|Exception): ' $(STACK_DIR)/logs/moto.log $(STACK_DIR)/logs/router.log | tail -40 || true; \
	    exit $$status; }; \
	  done=$$(date +%s); \
	  echo "e2e: stack up in $$((up - started))s, tests in $$((done - up))s"; \
	  if [ -d $(STACK_DIR)/e2e-timings ]; then echo "e2e: time per test:"; cat $(STACK_DIR)/e2e-timings/* | sort; fi
TEST_TARGETS += test-e2e

demo: setup api-setup build-debug ## from nothing: start the stack and the reviewer API, submit a request as SWB, approve it through GraphQL, download the archive, stop
	@trap '$(API) down; $(STACK) down' EXIT; \
	  $(STACK) up; \
	  $(API) up; \
	  $(CARGO) run --locked -q -p e2e-tests --bin egress-demo -- $(if $(MODE),--mode $(MODE))
