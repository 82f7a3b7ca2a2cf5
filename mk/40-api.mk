# The reviewer API locally: the GraphQL endpoint (AppSync simulator behind a front door that
# verifies Cognito tokens, local/appsync/) with Cognito users seeded in the stack's moto, and
# its tests. See local/appsync/README.md.

APPSYNC_DIR := $(ROOT)/local/appsync
APPSYNC_LOCK := $(APPSYNC_DIR)/package-lock.json
APPSYNC_STAMP := $(APPSYNC_DIR)/node_modules/.lock-$(firstword $(shell sha256sum $(APPSYNC_LOCK) 2>/dev/null))
API := $(STACK_PYTHON) $(APPSYNC_DIR)/api_stack.py

.PHONY: api-setup api-up api-down api-status test-api test-e2e-api

$(APPSYNC_STAMP): $(APPSYNC_LOCK) $(APPSYNC_DIR)/package.json
	@echo "setup: node modules of the local reviewer API ($(APPSYNC_DIR)/node_modules)"
	cd $(APPSYNC_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

api-setup: $(APPSYNC_STAMP) ## install the local reviewer API (local/appsync/node_modules)

test-api: api-setup ## schema, resolver templates and token checks of the reviewer API (no stack needed)
	cd $(APPSYNC_DIR) && node --test test/
TEST_TARGETS += test-api

api-up: api-setup ## on a running stack: seed Cognito users and serve the GraphQL API (.local-stack/api.json)
	$(API) up

api-down: ## stop the local reviewer API
	@if [ -x $(STACK_PYTHON) ]; then $(API) down; else echo "[api] not set up"; fi

api-status: ## is the local reviewer API up? (exit 0 up, 3 down)
	@$(API) status

# Like test-e2e: a fresh stack (on the binaries just built) and API, always stopped after.
test-e2e-api: setup api-setup build-debug ## only the GraphQL end-to-end tests with real Cognito tokens (fresh stack)
	$(CARGO) test -p e2e-tests --features e2e-api --locked --test 'api_*' --no-run
	@$(API) down >/dev/null; $(STACK) down >/dev/null
	@trap '$(API) down; $(STACK) down' EXIT; \
	  $(STACK) up; \
	  $(API) up; \
	  $(CARGO) test -p e2e-tests --features e2e-api --locked --test 'api_*' -- --test-threads $(E2E_TEST_THREADS)
# Not in TEST_TARGETS: `make test-e2e` runs these tests on its own stack together with the
# workflow paths.
