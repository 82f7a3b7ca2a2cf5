//! Configuration, read once at init.

use shared::config::{parsed_or, required, Env};
use shared::domain::sweep::ReminderPolicy;
use shared::services::sweep::SweepSettings;
use shared::EgressError;

/// Two weeks, as `start-workflow`'s default: the two must agree (the template gives both the
/// same value).
const DEFAULT_REVIEW_TIMEOUT_SECONDS: u64 = 14 * 24 * 3600;
const DAY: u64 = 24 * 3600;

/// What `sweep` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) requests_table: String,
    pub(crate) audit_table: String,
    pub(crate) swb_egress_store_table: String,
    pub(crate) state_machine_arn: String,
    pub(crate) sender_email: String,
    pub(crate) settings: SweepSettings,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "ADMIN_ALERT_TOPIC_ARN",
    "ADMIN_EMAIL",
    "APP_URL",
    "AUDIT_TABLE",
    "DATALAKE_BUCKET",
    "ESCALATE_AFTER_SECONDS",
    "EXPIRY_WARNING_SECONDS",
    "IG_NOTIFICATION_TOPIC_ARN",
    "REMIND_AFTER_SECONDS",
    "REMIND_EVERY_SECONDS",
    "REQUESTS_TABLE",
    "REVIEW_TIMEOUT_SECONDS",
    "RIT_NOTIFICATION_TOPIC_ARN",
    "SENDER_EMAIL",
    "STAGING_BUCKET",
    "STALE_UPLOAD_SECONDS",
    "STATE_MACHINE_ARN",
    "SWB_EGRESS_STORE_TABLE",
];

impl Config {
    /// Fails with the name of the first missing or malformed variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let policy = ReminderPolicy {
            remind_after: parsed_or(env, "REMIND_AFTER_SECONDS", 3 * DAY)?,
            remind_every: parsed_or(env, "REMIND_EVERY_SECONDS", 2 * DAY)?,
            escalate_after: parsed_or(env, "ESCALATE_AFTER_SECONDS", 7 * DAY)?,
            warn_before_expiry: parsed_or(env, "EXPIRY_WARNING_SECONDS", 2 * DAY)?,
            review_timeout: parsed_or(
                env,
                "REVIEW_TIMEOUT_SECONDS",
                DEFAULT_REVIEW_TIMEOUT_SECONDS,
            )?,
        };
        if policy.remind_every == 0 || policy.review_timeout == 0 {
            return Err(EgressError::Config(
                "REMIND_EVERY_SECONDS and REVIEW_TIMEOUT_SECONDS must be positive".into(),
            ));
        }
        Ok(Self {
            requests_table: required(env, "REQUESTS_TABLE")?,
            audit_table: required(env, "AUDIT_TABLE")?,
            swb_egress_store_table: required(env, "SWB_EGRESS_STORE_TABLE")?,
            state_machine_arn: required(env, "STATE_MACHINE_ARN")?,
            sender_email: required(env, "SENDER_EMAIL")?,
            settings: SweepSettings {
                policy,
                ig_topic_arn: required(env, "IG_NOTIFICATION_TOPIC_ARN")?,
                rit_topic_arn: required(env, "RIT_NOTIFICATION_TOPIC_ARN")?,
                admin_topic_arn: required(env, "ADMIN_ALERT_TOPIC_ARN")?,
                admin_email: required(env, "ADMIN_EMAIL")?,
                app_url: shared::config::optional(env, "APP_URL").unwrap_or_default(),
                staging_bucket: required(env, "STAGING_BUCKET")?,
                datalake_bucket: required(env, "DATALAKE_BUCKET")?,
                stale_upload_after: parsed_or(env, "STALE_UPLOAD_SECONDS", DAY)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ENV: [(&str, &str); 13] = [
        ("REQUESTS_TABLE", "requests"),
        ("AUDIT_TABLE", "audit"),
        ("SWB_EGRESS_STORE_TABLE", "swb-store"),
        (
            "STATE_MACHINE_ARN",
            "arn:aws:states:eu-west-2:123456789012:stateMachine:egress",
        ),
        ("SENDER_EMAIL", "noreply@example.org"),
        ("IG_NOTIFICATION_TOPIC_ARN", "arn:ig"),
        ("RIT_NOTIFICATION_TOPIC_ARN", "arn:rit"),
        ("ADMIN_ALERT_TOPIC_ARN", "arn:admin"),
        ("ADMIN_EMAIL", "admin@example.org"),
        ("STAGING_BUCKET", "staging"),
        ("DATALAKE_BUCKET", "datalake"),
        ("REMIND_AFTER_SECONDS", "30"),
        ("APP_URL", "https://egress.example.org"),
    ];

    fn env(skip: &str) -> HashMap<String, String> {
        ENV.iter()
            .filter(|(k, _)| *k != skip)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn when_timings_are_not_set_then_the_defaults_count_in_days() {
        let config = Config::from_env(&ENV).unwrap();
        let p = config.settings.policy;
        assert_eq!(p.remind_after, 30);
        assert_eq!(p.remind_every, 2 * DAY);
        assert_eq!(p.escalate_after, 7 * DAY);
        assert_eq!(p.review_timeout, DEFAULT_REVIEW_TIMEOUT_SECONDS);
        assert_eq!(config.settings.stale_upload_after, DAY);
    }

    #[test]
    fn when_a_variable_is_missing_then_init_fails_naming_it() {
        for skip in [
            "REQUESTS_TABLE",
            "SWB_EGRESS_STORE_TABLE",
            "ADMIN_ALERT_TOPIC_ARN",
            "DATALAKE_BUCKET",
        ] {
            let err = Config::from_env(&env(skip)).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            assert!(err.to_string().contains(skip), "{skip}: {err}");
        }
    }

    #[test]
    fn when_a_timing_is_malformed_or_zero_then_init_fails_naming_it() {
        let mut bad = env("");
        bad.insert("REMIND_AFTER_SECONDS".into(), "3 days".into());
        assert!(Config::from_env(&bad)
            .unwrap_err()
            .to_string()
            .contains("REMIND_AFTER_SECONDS"));
        let mut zero = env("");
        zero.insert("REMIND_EVERY_SECONDS".into(), "0".into());
        assert!(Config::from_env(&zero)
            .unwrap_err()
            .to_string()
            .contains("REMIND_EVERY_SECONDS"));
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new(ENV);
        Config::from_env(&env).unwrap();
        let mut asked = env.asked();
        asked.sort();
        assert_eq!(asked, VARIABLES);
    }
}
