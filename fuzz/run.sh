#!/usr/bin/env bash
# `make fuzz`: every fuzz target of tests/fuzz/ in release mode, one after the other, then a
# table of target, cases, time, result and outcomes. Exits non-zero if any target failed.
#
#   FUZZ_CASES  cases per target (default 1000000; the slow ZIP64 targets cap it themselves)
#   FUZZ_SEED   replay a run: the seed printed for a target (PROPTEST_RNG_SEED)
#   FUZZ_FILTER run only the targets whose test name contains this string
#   FUZZ_TARGETS run only these, in this order: comma-separated pieces of test names
#               (`policy::,chain::` runs every target of those two files)
set -uo pipefail

cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
CASES=${FUZZ_CASES:-1000000}
FILTER=${FUZZ_FILTER:-}
TARGETS=${FUZZ_TARGETS:-}
OUT=$PWD/target/fuzz
mkdir -p "$OUT"
# `cargo test --release` builds with the bench profile; fat LTO and one codegen unit only make
# a production binary smaller, so they are turned off here as in `make bench`.
export CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
export PROPTEST_CASES=$CASES
if [[ -n ${FUZZ_SEED:-} ]]; then export PROPTEST_RNG_SEED=$FUZZ_SEED; fi
test_cmd=("$CARGO" test --release --locked -p fuzz-tests --test fuzz)

# Built once, then the binary runs each target: a source change made meanwhile (other work
# in the same tree) cannot rebuild or break the run half way.
bin=$("${test_cmd[@]}" --no-run --message-format=json \
  | grep '"reason":"compiler-artifact"' | grep '"name":"fuzz"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
if [[ -z $bin || ! -x $bin ]]; then echo "make fuzz: the fuzz targets did not build" >&2; exit 2; fi
cd fuzz # where cargo runs a package's tests
mapfile -t tests < <("$bin" --list 2>/dev/null | sed -n 's/: test$//p' | grep -F -- "$FILTER")
if [[ -n $TARGETS ]]; then
  selected=()
  IFS=',' read -ra wanted <<<"$TARGETS"
  for w in "${wanted[@]}"; do
    for t in "${tests[@]}"; do
      if [[ $t == *"$w"* && " ${selected[*]} " != *" $t "* ]]; then selected+=("$t"); fi
    done
  done
  tests=("${selected[@]}")
fi
if [[ ${#tests[@]} -eq 0 ]]; then echo "no fuzz target matches '$FILTER' '$TARGETS'" >&2; exit 2; fi

started=$(date +%s)
failed=0
rows=()
for t in "${tests[@]}"; do
  log="$OUT/${t//::/.}.log"
  echo ">>> $t ($CASES cases)"
  t0=$(date +%s)
  "$bin" --exact "$t" --nocapture --test-threads 1 >"$log" 2>&1
  rc=$?
  wall=$(( $(date +%s) - t0 ))
  line=$(grep -o -m1 'fuzz-result .*' "$log" || true)
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  target=$(field target); cases=$(field cases); seed=$(field seed); result=$(field result)
  outcomes=$(field outcomes)
  # A process abort (out of memory) leaves no result line: the seed printed at the start.
  if [[ -z $seed ]]; then seed=$(sed -n 's/.*fuzz-seed .* seed=\([0-9]*\).*/\1/p' "$log" | head -1); fi
  if [[ $rc -ne 0 || $result != pass ]]; then
    failed=1
    result="FAIL (rc $rc, log $log)"
  fi
  rows+=("| ${target:-$t} | ${cases:-?} | ${wall} s | ${result:-?} | ${seed:-?} | ${outcomes//,/, } |")
  echo "    ${target:-$t}: ${result:-?} in ${wall} s"
done
total=$(( $(date +%s) - started ))

table="$OUT/last-run.md"
{
  echo "make fuzz: $(date -u +%Y-%m-%dT%H:%MZ), FUZZ_CASES=$CASES, $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), ${total} s in all"
  echo
  echo "| target | cases | time | result | seed | outcomes |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$table"
echo
cat "$table"
echo
if [[ $failed -ne 0 ]]; then
  echo "make fuzz: FAILED (the log of each failed target names its minimal input and seed)"
  exit 1
fi
echo "make fuzz: every target passed"
