//! Property-based fuzzing of every parser that takes outside input (issue 10, `make fuzz`).
//!
//! This library is deliberately empty: the fuzz targets are the test binary in `tests/fuzz/`,
//! so nothing here is built into a Lambda. `cargo test -p fuzz-tests` runs a short pass
//! (`PROPTEST_CASES`, a few thousand cases per target); `make fuzz` runs at least 1,000,000
//! cases per target in release mode and prints a table of the results.
