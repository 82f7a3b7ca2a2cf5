//! Property-based fuzzing of every parser that takes outside input (issue 10, `make fuzz`).
//!
//! Each target starts from a valid input (a fixture of `events/` or a generated valid value)
//! and mutates it with hostile values: wrong types, missing and extra members, huge strings,
//! Unicode, control characters, nulls, broken JSON text. The properties are the same
//! everywhere: no panic; every refusal is an `EgressError` with its stable `error_type` whose
//! message names the field (or key) at fault; everything accepted satisfies the rules.
//!
//! Case counts: `PROPTEST_CASES` (default 2,000 per target, the short pass of `cargo test`);
//! seeds: printed on each `fuzz-result` line, replayed with `PROPTEST_RNG_SEED`.

mod api;
mod api_args;
mod chain;
mod checkpoint;
mod checks;
mod cognito;
mod intake;
mod keys;
mod policy;
mod release;
mod snapshot;
mod support;
mod zipstream;
