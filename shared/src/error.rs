//! The error contract of every function.
//!
//! Each variant maps to a fixed Lambda `errorType` name. The state machine's `Retry` and
//! `Catch` clauses match on these names, so renaming one is a breaking change: the test at
//! the bottom of this file pins them.

use lambda_runtime::Diagnostic;

/// Every error a function of this service can return.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EgressError {
    /// The input is malformed or breaks a rule; retrying will not help.
    #[error("{0}")]
    Validation(String),
    /// Something the request names does not exist (an item, an object, an object version).
    #[error("{0}")]
    NotFound(String),
    /// The stored state does not allow the operation (already decided, stale handle...).
    #[error("{0}")]
    Conflict(String),
    /// The caller is not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// Data does not match what was recorded (a checksum, a size).
    #[error("{0}")]
    Integrity(String),
    /// A dependency failed in a way that may succeed on retry (throttling, timeouts, 5xx).
    #[error("{0}")]
    Transient(String),
    /// Required configuration is missing or malformed.
    #[error("{0}")]
    Config(String),
    /// A dependency failed in a way retrying will not fix.
    #[error("{0}")]
    Internal(String),
}

/// Every [`EgressError::error_type`] name, for the contract tests that check the ASL's
/// `Retry` and `Catch` clauses against the names the functions can return.
pub const ERROR_TYPES: &[&str] = &[
    "ValidationError",
    "NotFound",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "TransientError",
    "ConfigError",
    "InternalError",
];

impl EgressError {
    /// The stable Lambda `errorType` of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            EgressError::Validation(_) => "ValidationError",
            EgressError::NotFound(_) => "NotFound",
            EgressError::Conflict(_) => "Conflict",
            EgressError::Forbidden(_) => "Forbidden",
            EgressError::Integrity(_) => "IntegrityError",
            EgressError::Transient(_) => "TransientError",
            EgressError::Config(_) => "ConfigError",
            EgressError::Internal(_) => "InternalError",
        }
    }

    /// Shorthand for a [`EgressError::Validation`] naming what is wrong.
    pub fn validation(msg: impl Into<String>) -> Self {
        EgressError::Validation(msg.into())
    }

    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, EgressError::Transient(_))
    }
}

impl From<EgressError> for Diagnostic {
    fn from(err: EgressError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.to_string(),
        }
    }
}

/// The result type of everything in this crate.
pub type Result<T, E = EgressError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_mapped_to_a_diagnostic_then_each_variant_keeps_its_stable_name() {
        let cases = [
            (EgressError::Validation("v".into()), "ValidationError"),
            (EgressError::NotFound("n".into()), "NotFound"),
            (EgressError::Conflict("c".into()), "Conflict"),
            (EgressError::Forbidden("f".into()), "Forbidden"),
            (EgressError::Integrity("i".into()), "IntegrityError"),
            (EgressError::Transient("t".into()), "TransientError"),
            (EgressError::Config("c".into()), "ConfigError"),
            (EgressError::Internal("i".into()), "InternalError"),
        ];
        let names: Vec<&str> = cases.iter().map(|(_, name)| *name).collect();
        assert_eq!(names, ERROR_TYPES, "ERROR_TYPES lists every variant once");
        for (err, name) in cases {
            let message = err.to_string();
            let diagnostic = Diagnostic::from(err);
            assert_eq!(diagnostic.error_type, name);
            assert_eq!(diagnostic.error_message, message);
        }
    }

    #[test]
    fn when_transient_then_only_transient_is_retryable() {
        assert!(EgressError::Transient("x".into()).is_transient());
        assert!(!EgressError::Validation("x".into()).is_transient());
        assert!(!EgressError::Internal("x".into()).is_transient());
    }
}
