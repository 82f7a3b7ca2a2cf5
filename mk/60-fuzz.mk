# Property-based fuzzing of every parser of outside input (issue 10): the SWB message and its
# SNS envelope, the snapshot file, the key rules, the reviewer API's resolver payload, the
# Cognito trigger event and the zip writer. `make test` runs a short pass of the same targets
# through `test-rust` (`cargo test --workspace`, 2,000 cases per target); the long run is
# here, out of `make test`.

FUZZ_CASES ?= 1000000

.PHONY: fuzz
fuzz: ## fuzz every parser: FUZZ_CASES (default 1,000,000) per target in release, then a table (FUZZ_SEED replays)
	FUZZ_CASES=$(FUZZ_CASES) CARGO=$(CARGO) $(ROOT)/fuzz/run.sh
