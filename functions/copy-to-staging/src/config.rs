//! Configuration, read once at init.

use shared::checks::ProjectPolicies;
use shared::config::{optional, parsed_or, required, Env};
use shared::services::staging::StagingSettings;
use shared::EgressError;

/// Files copied and hashed at once unless `COPY_CONCURRENCY` says otherwise.
const DEFAULT_COPY_CONCURRENCY: usize = 8;
/// More than this would mostly queue on the SDK's connection pool and S3's per-prefix rate.
const MAX_COPY_CONCURRENCY: usize = 64;

/// What `copy-to-staging` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) requests_table: String,
    pub(crate) audit_table: String,
    pub(crate) staging: StagingSettings,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "AUDIT_TABLE",
    "CHECKS_POLICY",
    "COPY_CONCURRENCY",
    "REQUESTS_TABLE",
    "STAGING_BUCKET",
    "STAGING_KMS_KEY_ARN",
];

impl Config {
    /// Fails with the name of the first missing or malformed variable, or the policy's fault.
    ///
    /// `CHECKS_POLICY` is `check-outputs`' own (the template gives both the same value):
    /// staging checks the small files it stages under it, and `check-outputs` takes those
    /// checks over only when its policy is the same.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let concurrency: usize = parsed_or(env, "COPY_CONCURRENCY", DEFAULT_COPY_CONCURRENCY)?;
        if !(1..=MAX_COPY_CONCURRENCY).contains(&concurrency) {
            return Err(EgressError::Config(format!(
                "environment variable COPY_CONCURRENCY must be between 1 and {MAX_COPY_CONCURRENCY}, got {concurrency}"
            )));
        }
        let policies =
            ProjectPolicies::from_json(&optional(env, "CHECKS_POLICY").unwrap_or_default())
                .map_err(|e| EgressError::validation(format!("CHECKS_POLICY: {e}")))?;
        Ok(Self {
            requests_table: required(env, "REQUESTS_TABLE")?,
            audit_table: required(env, "AUDIT_TABLE")?,
            staging: StagingSettings::new(
                required(env, "STAGING_BUCKET")?,
                required(env, "STAGING_KMS_KEY_ARN")?,
                concurrency,
            )
            .with_checks(policies),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: [(&str, &str); 4] = [
        ("REQUESTS_TABLE", "egress-requests"),
        ("AUDIT_TABLE", "egress-audit"),
        ("STAGING_BUCKET", "egress-staging"),
        (
            "STAGING_KMS_KEY_ARN",
            "arn:aws:kms:eu-west-2:123456789012:key/0a1b2c3d",
        ),
    ];

    #[test]
    fn when_everything_is_set_then_the_default_concurrency_is_8() {
        let config = Config::from_env(&ENV).unwrap();
        assert_eq!(config.staging.copy_concurrency, 8);
        assert_eq!(config.staging.staging_bucket, "egress-staging");
        assert_eq!(config.requests_table, "egress-requests");
        assert_eq!(config.staging.checks, Some(ProjectPolicies::default()));
    }

    #[test]
    fn when_a_checks_policy_is_given_then_staging_checks_under_it_and_a_bad_one_fails_init() {
        let mut env: std::collections::HashMap<String, String> = ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert(
            "CHECKS_POLICY".into(),
            r#"{"version":"p-7","mode":"enforce"}"#.into(),
        );
        let config = Config::from_env(&env).unwrap();
        let policies = config.staging.checks.unwrap();
        assert_eq!(policies.for_project("any").version, "p-7");
        env.insert("CHECKS_POLICY".into(), r#"{"mode":"strict"}"#.into());
        let err = Config::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("CHECKS_POLICY"), "{err}");
    }

    #[test]
    fn when_a_variable_is_missing_then_init_fails_naming_it() {
        for missing in ENV.map(|(name, _)| name) {
            let env: std::collections::HashMap<String, String> = ENV
                .iter()
                .filter(|(name, _)| *name != missing)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let err = Config::from_env(&env).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn when_the_concurrency_is_out_of_range_then_init_fails_naming_it() {
        for bad in ["0", "65", "eight"] {
            let mut env: std::collections::HashMap<String, String> = ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env.insert("COPY_CONCURRENCY".into(), bad.into());
            let err = Config::from_env(&env).unwrap_err();
            assert!(err.to_string().contains("COPY_CONCURRENCY"), "{err}");
        }
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new(ENV);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
