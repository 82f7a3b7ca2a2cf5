//! The rules of the service, as plain functions with no AWS in them.

pub mod intake;
pub mod keys;
pub mod listing;
pub mod notify;
pub mod review;
pub mod staging;
pub mod sweep;
pub mod transitions;
