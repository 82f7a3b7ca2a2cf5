//! Structured logging for every function.
//!
//! Uses `lambda_runtime`'s tracing bootstrap, which writes JSON when the function's log
//! format is JSON and adds the request id of the invocation to every line through the
//! runtime's span. Secrets (task tokens, presigned URLs) are never passed to a log macro.
//! Metrics are separate lines of stdout in Embedded Metric Format ([`crate::metrics`]).

/// Installs the global tracing subscriber and sets where [`crate::metrics`] go
/// (`METRICS_NAMESPACE`, `PROJECT_NAME`). Call once, first thing in `main`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
    match crate::metrics::MetricsConfig::from_env(&crate::config::ProcessEnv) {
        Ok(config) => crate::metrics::init(config),
        // Metrics are not worth refusing requests over: the defaults apply and the error is
        // logged once (the template gate checks the values the template sets).
        Err(e) => tracing::error!(error = %e, "metrics configuration invalid; using the defaults"),
    }
}
