# Property-based fuzzing of every parser of outside input (issue 10): the SWB message and its
# SNS envelope, the snapshot file, the key rules, the reviewer API's resolver payload and
# arguments, the Cognito trigger event, the zip writer, the output checks' content readers and
# policy, the archive checkpoint, the audit-chain verifier and the release record verifier. `make test` runs a short pass of the same targets
# through `test-rust` (`cargo test --workspace`, 2,000 cases per target); the long run is
# here, out of `make test`.

FUZZ_CASES ?= 1000000

.PHONY: fuzz
fuzz: ## fuzz every parser: FUZZ_CASES (default 1,000,000) per target in release, then a table (FUZZ_SEED replays, FUZZ_TARGETS=a,b selects)
	FUZZ_CASES=$(FUZZ_CASES) FUZZ_TARGETS="$(FUZZ_TARGETS)" CARGO=$(CARGO) $(ROOT)/fuzz/run.sh
