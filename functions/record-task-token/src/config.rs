//! Configuration, read once at init.

use shared::config::{required, Env};
use shared::EgressError;

/// What `record-task-token` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) requests_table: String,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &["REQUESTS_TABLE"];

impl Config {
    /// Fails with the name of the missing variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        Ok(Self {
            requests_table: required(env, "REQUESTS_TABLE")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_the_table_is_not_configured_then_init_fails_naming_it() {
        let err = Config::from_env(&[("OTHER", "x")]).unwrap_err();
        assert!(err.to_string().contains("REQUESTS_TABLE"));
        let config = Config::from_env(&[("REQUESTS_TABLE", "egress-requests")]).unwrap();
        assert_eq!(config.requests_table, "egress-requests");
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new([("REQUESTS_TABLE", "egress-requests")]);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
