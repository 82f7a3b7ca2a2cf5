//! Configuration, read once at init.

use shared::config::{required, Env};
use shared::EgressError;

/// What `notify-requester` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) requests_table: String,
    pub(crate) sender_email: String,
    pub(crate) admin_email: String,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &["ADMIN_EMAIL", "REQUESTS_TABLE", "SENDER_EMAIL"];

impl Config {
    /// Fails with the name of the first missing variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        Ok(Self {
            requests_table: required(env, "REQUESTS_TABLE")?,
            sender_email: required(env, "SENDER_EMAIL")?,
            admin_email: required(env, "ADMIN_EMAIL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_the_sender_is_missing_then_init_fails_naming_it() {
        let err = Config::from_env(&[("REQUESTS_TABLE", "t"), ("ADMIN_EMAIL", "a@example.org")])
            .unwrap_err();
        assert!(err.to_string().contains("SENDER_EMAIL"), "{err}");
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new([
            ("REQUESTS_TABLE", "t"),
            ("SENDER_EMAIL", "egress@example.org"),
            ("ADMIN_EMAIL", "a@example.org"),
        ]);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
