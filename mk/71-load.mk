# `make load` (issue 10): 200 SWB submissions at once, duplicate deliveries, reviewers deciding
# through GraphQL with 20 concurrent decisions on the same request, then the promises
# (tests/tests/load.rs prints the table). A few minutes on 2 cores; not part of `make test`.
#
# Like test-e2e it starts a fresh stack (on the binaries just built) and the reviewer API,
# here with LOAD_CONCURRENCY instances per function, and always stops both.

LOAD_CONCURRENCY ?= 16

.PHONY: load
load: setup api-setup build-debug ## load run: 200 requests at once, duplicates, contested decisions; throughput, latency and the promises (LOAD_CONCURRENCY instances per function, default 16)
	$(CARGO) test -p e2e-tests --features load --locked --test load --no-run
	@$(API) down >/dev/null; $(STACK) down >/dev/null
	@trap '$(API) down; $(STACK) down' EXIT; \
	  export EGRESS_LAMBDA_CONCURRENCY=$(LOAD_CONCURRENCY); \
	  $(STACK) up; \
	  $(API) up; \
	  $(CARGO) test -p e2e-tests --features load --locked --test load
