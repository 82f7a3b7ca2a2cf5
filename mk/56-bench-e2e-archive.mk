# End-to-end benchmark of the archive step on the local stack (tests/tests/bench_e2e_archive.rs):
# copy-to-datalake's ArchiveStep (in a child of the bench, and the real copy-to-datalake binary
# invoked once through a minimal runtime API) against a bare GET-everything + multipart-PUT of
# the same bytes, at loopback and with 20 ms added per request by the router, each in its own
# process so its peak RSS is its own. It takes the shared stack lock itself: run it without
# an outer `flock /tmp/e2e.lock` (a second lock on the same file waits for ever). Optimised
# build (the bench profile's settings: no fat LTO), its own stack under the shared lock,
# stopped afterwards; never part of `make test`.

BENCH_ARCHIVE_SIZES_MIB ?= 256,1024
BENCH_ARCHIVE_LATENCIES_MS ?= 0,20
BENCH_ARCHIVE_FILES ?= 64
BENCH_ARCHIVE_MODES ?= bare,archive,function
# Rounds of the modes at each size and latency; the medians of their paired ratios are printed.
BENCH_ARCHIVE_REPEAT ?= 3
# moto keeps an object above 5 MiB in a temporary file, so its CompleteMultipartUpload writes
# the whole archive to disk in both runs: seconds per GiB, varying with the host's disk from
# one round to the next (1.1 to 9.2 s at 256 MiB on 2026-12-03), where AWS's completion does
# not grow with the size. Objects up to this many MiB stay in moto's memory instead (0: moto's
# default). About 6 GiB of memory at 1 GiB; a 4 GiB run needs it at 0.
BENCH_ARCHIVE_MOTO_MEMORY_MIB ?= 1536

.PHONY: bench-e2e-archive
bench-e2e-archive: ## e2e benchmark on the local stack: archive step vs bare GET+PUT at 0 and 20 ms added, peak RSS (BENCH_ARCHIVE_SIZES_MIB)
	$(BENCH_PROFILE_ENV) $(CARGO) build --profile bench --locked -p e2e-tests --tests --features bench-e2e
	$(BENCH_PROFILE_ENV) $(CARGO) build --profile bench --locked -p copy-to-datalake --bin copy-to-datalake
	$(CARGO) build --locked --workspace
	flock /tmp/e2e.lock bash -c 'EGRESS_MALWARE_SCAN=off \
	  $(if $(filter 0,$(BENCH_ARCHIVE_MOTO_MEMORY_MIB)),,MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=$$(($(BENCH_ARCHIVE_MOTO_MEMORY_MIB) * 1048576))) \
	  $(MAKE) stack-up && \
	  BENCH_ARCHIVE_SIZES_MIB=$(BENCH_ARCHIVE_SIZES_MIB) BENCH_ARCHIVE_LATENCIES_MS=$(BENCH_ARCHIVE_LATENCIES_MS) \
	  BENCH_ARCHIVE_FILES=$(BENCH_ARCHIVE_FILES) BENCH_ARCHIVE_MODES=$(BENCH_ARCHIVE_MODES) \
	  BENCH_ARCHIVE_REPEAT=$(BENCH_ARCHIVE_REPEAT) \
	  $(BENCH_PROFILE_ENV) $(CARGO) test --profile bench --locked -p e2e-tests --features bench-e2e --test bench_e2e_archive; \
	  rc=$$?; $(MAKE) stack-down; exit $$rc'
