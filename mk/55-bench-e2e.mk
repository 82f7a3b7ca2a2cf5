# End-to-end benchmark of staging and listRequests on the local stack (tests/tests/bench_e2e.rs):
# 1,000 small objects staged by the step and by one CopyObject per object, at loopback and with
# 20 ms added per request by the router; listRequests at 10,000 and 100,000 stored requests.
# Starts its own stack under the shared lock and stops it; never part of `make test`.

BENCH_E2E ?= staging,list
BENCH_STAGING_FILES ?= 1000

.PHONY: bench-e2e-staging
bench-e2e-staging: ## e2e benchmark on the local stack: staging 1,000 small objects (step vs CopyObject, 0 and 20 ms added) and listRequests at 10k/100k requests
	$(CARGO) build --locked -p e2e-tests --tests --features bench-e2e
	flock /tmp/e2e.lock bash -c '$(MAKE) stack-up && \
	  BENCH_E2E=$(BENCH_E2E) BENCH_STAGING_FILES=$(BENCH_STAGING_FILES) \
	  $(CARGO) test --locked -p e2e-tests --features bench-e2e --test bench_e2e; \
	  rc=$$?; $(MAKE) stack-down; exit $$rc'

BENCH_MOTO_PORT ?= 5599

.PHONY: bench-e2e-moto
bench-e2e-moto: ## the same benchmark on a bare moto server (no stack, no lock; latency slept in-process)
	$(CARGO) build --locked -p e2e-tests --tests --features bench-e2e
	@set -e; dir=$$(mktemp -d); \
	  $(ROOT)/.venv/stack/bin/python -m moto.server -H 127.0.0.1 -p $(BENCH_MOTO_PORT) > $$dir/moto.log 2>&1 & pid=$$!; \
	  trap "kill $$pid" EXIT; sleep 3; \
	  key=$$($(ROOT)/.venv/stack/bin/python $(ROOT)/tests/bench/moto_provision.py http://127.0.0.1:$(BENCH_MOTO_PORT)); \
	  BENCH_ENDPOINT=http://127.0.0.1:$(BENCH_MOTO_PORT) BENCH_KMS_KEY=$$key BENCH_E2E=$(BENCH_E2E) \
	  BENCH_STAGING_FILES=$(BENCH_STAGING_FILES) \
	  $(CARGO) test --locked -p e2e-tests --features bench-e2e --test bench_e2e
