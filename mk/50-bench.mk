# Benchmarks of the data path: throughput (MiB/s) and peak memory. Not part of `make test`:
# the figures depend on the machine, and a release build takes minutes on 2 cores.
#
# The bench profile inherits the release profile; fat LTO with one codegen unit is turned off
# here because it only shortens a production binary's size and start-up, while it makes this
# build several times slower. Hashing and copying run in the same optimised code either way.

BENCH_PROFILE_ENV ?= CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
BENCH_TOTAL_MIB ?= 1024
BENCH_PART_MIB ?= 8
BENCH_FILES ?= 8
# Output checks (issue 12): MiB per throughput run, and the large CSV of the peak-memory run.
CHECKS_BENCH_MIB ?= 256
CHECKS_BENCH_LARGE_MIB ?= 1024

.PHONY: bench
bench: ## data-path benchmark: zip writer, staging SHA-256 and archive over 1 GiB (BENCH_TOTAL_MIB, BENCH_PART_MIB)
	$(BENCH_PROFILE_ENV) BENCH_TOTAL_MIB=$(BENCH_TOTAL_MIB) BENCH_PART_MIB=$(BENCH_PART_MIB) \
	  BENCH_FILES=$(BENCH_FILES) $(CARGO) bench --locked -p egress-shared --features mocks --bench archive
	$(BENCH_PROFILE_ENV) CHECKS_BENCH_MIB=$(CHECKS_BENCH_MIB) CHECKS_BENCH_LARGE_MIB=$(CHECKS_BENCH_LARGE_MIB) \
	  $(CARGO) bench --locked -p egress-check --bench checks
