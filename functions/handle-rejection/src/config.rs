//! Configuration, read once at init.

use shared::config::{required, Env};
use shared::EgressError;

/// What `handle-rejection` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) staging_bucket: String,
    pub(crate) audit_table: String,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &["AUDIT_TABLE", "STAGING_BUCKET"];

impl Config {
    /// Fails with the name of the first missing variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        Ok(Self {
            staging_bucket: required(env, "STAGING_BUCKET")?,
            audit_table: required(env, "AUDIT_TABLE")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_variable_is_missing_then_init_fails_naming_it() {
        let err = Config::from_env(&[("AUDIT_TABLE", "audit")]).unwrap_err();
        assert!(err.to_string().contains("STAGING_BUCKET"), "{err}");
        let err = Config::from_env(&[("STAGING_BUCKET", "staging")]).unwrap_err();
        assert!(err.to_string().contains("AUDIT_TABLE"), "{err}");
        let config =
            Config::from_env(&[("STAGING_BUCKET", "staging"), ("AUDIT_TABLE", "audit")]).unwrap();
        assert_eq!(
            (config.staging_bucket.as_str(), config.audit_table.as_str()),
            ("staging", "audit")
        );
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new([
            ("STAGING_BUCKET", "staging"),
            ("AUDIT_TABLE", "audit"),
        ]);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
