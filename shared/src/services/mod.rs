//! Use cases: one function per workflow step or API operation, written against the ports so
//! that each Lambda handler is a single call.

pub mod archive;
pub mod cleanup;
pub mod intake;
pub mod multipart;
pub mod notify;
pub mod review_api;
pub mod review_task;
pub mod staging;
mod step_audit;
