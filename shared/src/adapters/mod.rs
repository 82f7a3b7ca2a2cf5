//! AWS SDK implementations of the ports.
//!
//! SDK errors are classified with `into_service_error()` and the modelled variants; anything
//! throttled, timed out or 5xx becomes [`crate::EgressError::Transient`] so the state
//! machine's `Retry` applies.

pub mod cognito;
pub mod dynamodb;
pub mod dynamodb_audit;
pub mod dynamodb_review;
pub mod dynamodb_sweep;
pub mod kms;
pub mod s3;
pub mod s3_presign;
pub mod s3_uploads;
pub mod ses;
pub mod sfn;
pub mod sfn_executions;
pub mod sns;

mod sdk_error;
pub use sdk_error::classify;
