//! Configuration, read once at init.

use shared::config::{parsed_or, required, Env};
use shared::domain::intake::{workflow_config, IntakeConfig};
use shared::EgressError;

/// Two weeks, the review period the reference deployment used.
const DEFAULT_REVIEW_TIMEOUT_SECONDS: u64 = 14 * 24 * 3600;

/// What `start-workflow` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) state_machine_arn: String,
    pub(crate) intake: IntakeConfig,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "APPROVAL_MODE",
    "APP_URL",
    "IG_REVIEWER_GROUP",
    "REVIEW_TIMEOUT_SECONDS",
    "RIT_REVIEWER_GROUP",
    "STATE_MACHINE_ARN",
    "SWB_EGRESS_STORE_BUCKET",
    "SWB_NOTIFICATION_BUCKET",
];

impl Config {
    /// Fails with the name of the first missing or malformed variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let approval_mode = required(env, "APPROVAL_MODE")?;
        let workflow = workflow_config(
            &approval_mode,
            required(env, "IG_REVIEWER_GROUP")?,
            required(env, "RIT_REVIEWER_GROUP")?,
            parsed_or(
                env,
                "REVIEW_TIMEOUT_SECONDS",
                DEFAULT_REVIEW_TIMEOUT_SECONDS,
            )?,
            shared::config::optional(env, "APP_URL").unwrap_or_default(),
        )
        .map_err(|e| EgressError::Config(format!("APPROVAL_MODE / REVIEW_TIMEOUT_SECONDS: {e}")))?;
        Ok(Self {
            state_machine_arn: required(env, "STATE_MACHINE_ARN")?,
            intake: IntakeConfig {
                swb_notification_bucket: required(env, "SWB_NOTIFICATION_BUCKET")?,
                swb_egress_store_bucket: required(env, "SWB_EGRESS_STORE_BUCKET")?,
                workflow,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::model::ApprovalMode;

    const ENV: [(&str, &str); 7] = [
        (
            "STATE_MACHINE_ARN",
            "arn:aws:states:eu-west-2:123456789012:stateMachine:egress",
        ),
        ("SWB_NOTIFICATION_BUCKET", "swb-notify"),
        ("SWB_EGRESS_STORE_BUCKET", "swb-egress"),
        ("APPROVAL_MODE", "DUAL"),
        ("IG_REVIEWER_GROUP", "IGApprover"),
        ("RIT_REVIEWER_GROUP", "ResearchITAdmin"),
        ("APP_URL", "https://egress.example.org"),
    ];

    #[test]
    fn when_all_variables_are_set_then_the_mode_is_normalised_once() {
        let config = Config::from_env(&ENV).unwrap();
        assert_eq!(config.intake.workflow.approval_mode, ApprovalMode::Dual);
        assert_eq!(config.intake.swb_egress_store_bucket, "swb-egress");
        assert_eq!(
            config.intake.workflow.review_timeout_seconds,
            DEFAULT_REVIEW_TIMEOUT_SECONDS
        );
    }

    #[test]
    fn when_a_variable_is_missing_then_init_fails_naming_it() {
        for skip in [
            "STATE_MACHINE_ARN",
            "SWB_NOTIFICATION_BUCKET",
            "SWB_EGRESS_STORE_BUCKET",
            "APPROVAL_MODE",
        ] {
            let env: std::collections::HashMap<String, String> = ENV
                .iter()
                .filter(|(k, _)| *k != skip)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let err = Config::from_env(&env).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            assert!(err.to_string().contains(skip), "{skip}: {err}");
        }
    }

    #[test]
    fn when_the_approval_mode_is_invalid_then_init_fails_naming_it() {
        let mut env: std::collections::HashMap<String, String> = ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("APPROVAL_MODE".into(), "triple".into());
        let err = Config::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("APPROVAL_MODE"), "{err}");
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new(ENV);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
