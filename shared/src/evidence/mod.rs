//! Evidence anyone can verify (DESIGN.md §9): the hash-chained audit trail ([`chain`]), the
//! signed release manifest ([`release`]), the offline archive check behind `egress-verify`
//! ([`archive_check`]) and the evidence pack of a request ([`pack`]).
//!
//! [`chain`], [`release`]'s record and signature formats and [`archive_check`] are plain
//! functions without AWS, so the CLI and an auditor's own tools can reuse them; the services
//! that sign and gather reach AWS only through ports.

pub mod archive_check;
pub mod chain;
pub mod release;
