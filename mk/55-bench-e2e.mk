# End-to-end benchmark of staging and listRequests on the local stack (tests/tests/bench_e2e.rs):
# 1,000 small objects staged by the step and by one CopyObject per object, at loopback and with
# 20 ms added per request by the router; the output checks (check-outputs' step) against the
# staging of the same request (1,000 small objects, and one large CSV with a few binaries);
# listRequests at 10,000 and 100,000 stored requests. Optimised build (the bench profile's
# settings, as `make bench`: the checks are CPU work in our code, which a debug build would
# slow tenfold). Starts its own stack under the shared lock and stops it; never part of
# `make test`.

BENCH_E2E ?= staging,checks,list
BENCH_STAGING_FILES ?= 1000
# Rounds of the staging step and its baseline at each latency; the medians are printed.
BENCH_STAGING_REPEAT ?= 3
# The checks phase's large request: one CSV of this size and a few binaries.
BENCH_CHECKS_CSV_MIB ?= 256
BENCH_CHECKS_BINARIES ?= 3
BENCH_CHECKS_BINARY_MIB ?= 4
BENCH_E2E_ENV = BENCH_E2E=$(BENCH_E2E) BENCH_STAGING_FILES=$(BENCH_STAGING_FILES) \
  BENCH_STAGING_REPEAT=$(BENCH_STAGING_REPEAT) \
  BENCH_CHECKS_CSV_MIB=$(BENCH_CHECKS_CSV_MIB) BENCH_CHECKS_BINARIES=$(BENCH_CHECKS_BINARIES) \
  BENCH_CHECKS_BINARY_MIB=$(BENCH_CHECKS_BINARY_MIB) $(BENCH_PROFILE_ENV)

.PHONY: bench-e2e-staging
bench-e2e-staging: ## e2e benchmark on the local stack: staging 1,000 small objects (step vs CopyObject, 0 and 20 ms added), checks vs staging, listRequests at 10k/100k requests
	$(BENCH_PROFILE_ENV) $(CARGO) build --profile bench --locked -p e2e-tests --tests --features bench-e2e
	flock /tmp/e2e.lock bash -c 'EGRESS_MALWARE_SCAN=off $(MAKE) stack-up && \
	  $(BENCH_E2E_ENV) \
	  $(CARGO) test --profile bench --locked -p e2e-tests --features bench-e2e --test bench_e2e; \
	  rc=$$?; $(MAKE) stack-down; exit $$rc'

BENCH_MOTO_PORT ?= 5599

.PHONY: bench-e2e-moto
bench-e2e-moto: ## the same benchmark on a bare moto server (no stack, no lock; latency slept in-process)
	$(BENCH_PROFILE_ENV) $(CARGO) build --profile bench --locked -p e2e-tests --tests --features bench-e2e
	@set -e; dir=$$(mktemp -d); \
	  $(ROOT)/.venv/stack/bin/python -m moto.server -H 127.0.0.1 -p $(BENCH_MOTO_PORT) > $$dir/moto.log 2>&1 & pid=$$!; \
	  trap "kill $$pid" EXIT; sleep 3; \
	  key=$$($(ROOT)/.venv/stack/bin/python $(ROOT)/tests/bench/moto_provision.py http://127.0.0.1:$(BENCH_MOTO_PORT)); \
	  BENCH_ENDPOINT=http://127.0.0.1:$(BENCH_MOTO_PORT) BENCH_KMS_KEY=$$key $(BENCH_E2E_ENV) \
	  $(CARGO) test --profile bench --locked -p e2e-tests --features bench-e2e --test bench_e2e
