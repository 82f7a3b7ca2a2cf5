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
    #[error("{}", bounded(.0))]
    Validation(String),
    /// Something the request names does not exist (an item, an object, an object version).
    #[error("{}", bounded(.0))]
    NotFound(String),
    /// The stored state does not allow the operation (already decided, stale handle...).
    #[error("{}", bounded(.0))]
    Conflict(String),
    /// The caller is not allowed to do this.
    #[error("{}", bounded(.0))]
    Forbidden(String),
    /// Data does not match what was recorded (a checksum, a size).
    #[error("{}", bounded(.0))]
    Integrity(String),
    /// A dependency failed in a way that may succeed on retry (throttling, timeouts, 5xx).
    #[error("{}", bounded(.0))]
    Transient(String),
    /// Required configuration is missing or malformed.
    #[error("{}", bounded(.0))]
    Config(String),
    /// A dependency failed in a way retrying will not fix.
    #[error("{}", bounded(.0))]
    Internal(String),
}

/// Longest message an error carries anywhere (logs, the Lambda error Step Functions records,
/// the reviewer API's answer). Messages name fields and keys, and a hostile input can make
/// them huge (a 1 MiB e-mail, a 1 MiB GraphQL argument echoed by a parser); past this they are
/// cut, saying how long they were. 4 KiB keeps a list of ten clashing keys whole.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] (on a character boundary), with a note of
/// its full length.
pub fn bounded(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_MESSAGE_BYTES {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut end = MAX_MESSAGE_BYTES - 64;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}… (message cut: {} bytes in all)",
        &message[..end],
        message.len()
    ))
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
    fn when_a_message_is_huge_then_every_rendering_of_it_is_bounded() {
        let err = EgressError::validation(format!(
            "field x: \"{}\" is not an e-mail",
            "é".repeat(600_000)
        ));
        let shown = err.to_string();
        assert!(shown.len() <= MAX_MESSAGE_BYTES, "{} bytes", shown.len());
        assert!(shown.starts_with("field x: "));
        assert!(shown.ends_with("bytes in all)"));
        let diagnostic: Diagnostic = err.into();
        assert!(diagnostic.error_message.len() <= MAX_MESSAGE_BYTES);
        let short = EgressError::validation("field x is missing");
        assert_eq!(short.to_string(), "field x is missing");
    }

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
