//! Configuration, read once at init.

use shared::checks::ProjectPolicies;
use shared::config::{optional, required, Env};
use shared::EgressError;

/// What `check-outputs` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) staging_bucket: String,
    pub(crate) staging_kms_key_arn: String,
    pub(crate) audit_table: String,
    /// The checks' policies (`CHECKS_POLICY`, JSON: one policy, or a default and one per
    /// project; empty: the defaults), validated here so a bad policy fails the cold start
    /// naming the member at fault.
    pub(crate) policies: ProjectPolicies,
    /// How long the step waits for the malware scanner's tags (`MALWARE_SCAN_WAIT_SECONDS`;
    /// absent or 0: the scanner is off, as when the template's `EnableMalwareScan` is false).
    pub(crate) malware_wait: Option<std::time::Duration>,
}

/// The longest wait: the function's timeout (900 s) less time for the content checks.
const MAX_MALWARE_WAIT_SECONDS: u64 = 600;

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "AUDIT_TABLE",
    "CHECKS_POLICY",
    "MALWARE_SCAN_WAIT_SECONDS",
    "STAGING_BUCKET",
    "STAGING_KMS_KEY_ARN",
];

impl Config {
    /// Fails with the name of the first missing variable, or the policy's fault.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let audit_table = required(env, "AUDIT_TABLE")?;
        let policies =
            ProjectPolicies::from_json(&optional(env, "CHECKS_POLICY").unwrap_or_default())
                .map_err(|e| EgressError::validation(format!("CHECKS_POLICY: {e}")))?;
        let wait = match optional(env, "MALWARE_SCAN_WAIT_SECONDS") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= MAX_MALWARE_WAIT_SECONDS)
                .ok_or_else(|| {
                    EgressError::validation(format!(
                        "MALWARE_SCAN_WAIT_SECONDS must be 0 to {MAX_MALWARE_WAIT_SECONDS} seconds"
                    ))
                })?,
        };
        Ok(Self {
            malware_wait: (wait > 0).then(|| std::time::Duration::from_secs(wait)),
            staging_bucket: required(env, "STAGING_BUCKET")?,
            staging_kms_key_arn: required(env, "STAGING_KMS_KEY_ARN")?,
            audit_table,
            policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::checks::Mode;

    const BASE: [(&str, &str); 3] = [
        ("STAGING_BUCKET", "staging"),
        ("STAGING_KMS_KEY_ARN", "arn:aws:kms:eu-west-2:1:key/k"),
        ("AUDIT_TABLE", "audit"),
    ];

    fn with(extra: (&str, &str)) -> std::collections::HashMap<String, String> {
        BASE.iter()
            .chain(std::iter::once(&extra))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn when_the_policy_is_absent_then_the_defaults_apply_and_a_given_one_is_read() {
        let config = Config::from_env(&BASE).unwrap();
        assert_eq!(config.policies, ProjectPolicies::default());
        let env = with(("CHECKS_POLICY", r#"{"version":"p-1","mode":"enforce"}"#));
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.policies.for_project("p").mode, Mode::Enforce);
    }

    #[test]
    fn when_the_policy_is_invalid_or_a_variable_missing_then_init_fails_naming_it() {
        let env = with(("CHECKS_POLICY", r#"{"mode":"strict"}"#));
        let err = Config::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("CHECKS_POLICY"), "{err}");
        let err = Config::from_env(&[("AUDIT_TABLE", "audit")]).unwrap_err();
        assert!(err.to_string().contains("STAGING_BUCKET"), "{err}");
    }

    #[test]
    fn when_a_malware_wait_is_set_then_the_scanner_is_awaited_and_zero_turns_it_off() {
        assert_eq!(Config::from_env(&BASE).unwrap().malware_wait, None);
        let on = Config::from_env(&with(("MALWARE_SCAN_WAIT_SECONDS", "120"))).unwrap();
        assert_eq!(on.malware_wait, Some(std::time::Duration::from_secs(120)));
        let off = Config::from_env(&with(("MALWARE_SCAN_WAIT_SECONDS", "0"))).unwrap();
        assert_eq!(off.malware_wait, None);
        for bad in ["-1", "601", "soon"] {
            let err = Config::from_env(&with(("MALWARE_SCAN_WAIT_SECONDS", bad))).unwrap_err();
            assert!(
                err.to_string().contains("MALWARE_SCAN_WAIT_SECONDS"),
                "{err}"
            );
        }
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new(BASE);
        Config::from_env(&env).unwrap();
        let mut asked = env.asked();
        asked.sort();
        assert_eq!(asked, VARIABLES);
    }
}
