# `make chaos` (issue 10): the workflow under injected AWS faults (the edge router's fault
# injector, local/egress_local/faults.py) and killed function processes, then every promise
# of DESIGN.md §8 checked (tests/src/promises.rs). Long: not part of `make test`.
# CHAOS_SEED replays a run's faults (printed at the start); CHAOS_RATE (default 0.2) and
# CHAOS_REQUESTS (default 52) size it. The table is kept in .local-stack/chaos/.

CHAOS_RATE ?= 0.2
CHAOS_REQUESTS ?= 52

.PHONY: chaos
chaos: setup api-setup build-debug ## 20% of AWS calls fail (seeded: CHAOS_SEED replays) while 52 requests run, functions killed mid-copy and mid-archive; prints what happened and the promises
	$(CARGO) test -p e2e-tests --features e2e,e2e-api,chaos --locked --test chaos --no-run
	@$(API) down >/dev/null; $(STACK) down >/dev/null
	@trap '$(API) down; $(STACK) down' EXIT; \
	  $(STACK) up; \
	  $(API) up; \
	  CHAOS_SEED=$(CHAOS_SEED) CHAOS_RATE=$(CHAOS_RATE) CHAOS_REQUESTS=$(CHAOS_REQUESTS) \
	    $(CARGO) test -p e2e-tests --features e2e,e2e-api,chaos --locked --test chaos -- --test-threads 1 --nocapture
