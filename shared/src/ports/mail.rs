//! Sending e-mail.

use std::future::Future;

use crate::error::Result;

/// A plain-text (and optionally HTML) e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// Optional HTML body.
    pub html: Option<String>,
}

/// Sends e-mail from the service's verified sender identity.
pub trait Mailer: Send + Sync {
    /// Sends `email`; returns the provider's message id.
    fn send(&self, email: &Email) -> impl Future<Output = Result<String>> + Send;
}
