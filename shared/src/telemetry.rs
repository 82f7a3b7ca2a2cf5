//! Structured logging for every function.
//!
//! Uses `lambda_runtime`'s tracing bootstrap, which writes JSON when the function's log
//! format is JSON and adds the request id of the invocation to every line through the
//! runtime's span. Secrets (task tokens, presigned URLs) are never passed to a log macro.

/// Installs the global tracing subscriber. Call once, first thing in `main`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
