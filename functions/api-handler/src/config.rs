//! Configuration, read once at init.

use std::time::Duration;

use shared::config::{optional, parsed_or, required, Env};
use shared::domain::review::federation::{group_claim, IdpGroupMap};
use shared::domain::review::revoke::DEFAULT_ADMIN_GROUP;
use shared::domain::review::ReviewPolicy;
use shared::services::review_api::{ReviewSettings, MAX_URL_EXPIRY};
use shared::EgressError;

/// Presigned URLs live this long unless configured otherwise: long enough to start a
/// download, short enough that a leaked link is soon useless.
const DEFAULT_URL_EXPIRY_SECONDS: u64 = 300;
/// Downloads per request unless configured otherwise.
const DEFAULT_MAX_DOWNLOADS: u32 = 3;
/// A sanity bound on `MAX_DOWNLOADS`.
const MAX_MAX_DOWNLOADS: u32 = 1_000;

/// What `api-handler` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) requests_table: String,
    pub(crate) audit_table: String,
    /// The staging bucket: the output checks' report of a request in review.
    pub(crate) staging_bucket: String,
    /// The release signing key (ARN): the API serves its public half.
    pub(crate) release_signing_key_id: String,
    /// The Cognito group whose members may revoke a release (`revokeRelease`).
    pub(crate) admin_group: String,
    /// The datalake's KMS key: a revoked archive is re-encrypted with it when moved.
    pub(crate) datalake_kms_key_arn: String,
    /// The verified SES sender of the revocation e-mails.
    pub(crate) sender_email: String,
    pub(crate) settings: ReviewSettings,
}

fn config_error(msg: String) -> EgressError {
    EgressError::Config(msg)
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "ADMIN_GROUP",
    "AUDIT_TABLE",
    "DATALAKE_BUCKET",
    "DATALAKE_KMS_KEY_ARN",
    "DOWNLOAD_GROUPS",
    "DOWNLOAD_URL_EXPIRY_SECONDS",
    "IDP_GROUP_CLAIM",
    "IDP_GROUP_MAP",
    "IG_REVIEWER_GROUP",
    "LIST_MAX_AGE_DAYS",
    "MAX_DOWNLOADS",
    "RELEASE_SIGNING_KEY_ID",
    "REQUESTS_TABLE",
    "RIT_REVIEWER_GROUP",
    "SENDER_EMAIL",
    "STAGING_BUCKET",
    "USER_POOL_ID",
];

impl Config {
    /// Fails with the name of the missing or malformed variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let max_downloads = parsed_or(env, "MAX_DOWNLOADS", DEFAULT_MAX_DOWNLOADS)?;
        let policy = ReviewPolicy::from_groups(
            &required(env, "IG_REVIEWER_GROUP")?,
            &required(env, "RIT_REVIEWER_GROUP")?,
            &optional(env, "DOWNLOAD_GROUPS").unwrap_or_default(),
            max_downloads,
        )?;
        if max_downloads > MAX_MAX_DOWNLOADS {
            return Err(config_error(format!(
                "MAX_DOWNLOADS is {max_downloads}; at most {MAX_MAX_DOWNLOADS} is accepted"
            )));
        }
        let expiry = parsed_or(
            env,
            "DOWNLOAD_URL_EXPIRY_SECONDS",
            DEFAULT_URL_EXPIRY_SECONDS,
        )?;
        if expiry == 0 || expiry > MAX_URL_EXPIRY.as_secs() {
            return Err(config_error(format!(
                "DOWNLOAD_URL_EXPIRY_SECONDS is {expiry}; it must be between 1 and {}",
                MAX_URL_EXPIRY.as_secs()
            )));
        }
        // The same variables as `pre-token-generation`: a federated reviewer's groups are
        // re-derived from their stored IdP groups with the mapping that gave them at sign-in.
        let idp_group_claim = group_claim(optional(env, "IDP_GROUP_CLAIM").as_deref())?;
        let idp_group_map = IdpGroupMap::parse(
            &optional(env, "IDP_GROUP_MAP").unwrap_or_default(),
            &[&policy.ig_group, &policy.rit_group],
        )?;
        let admin_group = policy.admin_group(
            &optional(env, "ADMIN_GROUP").unwrap_or_else(|| DEFAULT_ADMIN_GROUP.to_string()),
        )?;
        Ok(Self {
            admin_group,
            datalake_kms_key_arn: required(env, "DATALAKE_KMS_KEY_ARN")?,
            sender_email: required(env, "SENDER_EMAIL")?,
            requests_table: required(env, "REQUESTS_TABLE")?,
            audit_table: required(env, "AUDIT_TABLE")?,
            staging_bucket: required(env, "STAGING_BUCKET")?,
            release_signing_key_id: required(env, "RELEASE_SIGNING_KEY_ID")?,
            settings: ReviewSettings {
                policy,
                datalake_bucket: required(env, "DATALAKE_BUCKET")?,
                url_expiry: Duration::from_secs(expiry),
                list_max_age_days: parsed_or(env, "LIST_MAX_AGE_DAYS", 0)?,
                // Optional: without it, the pool is the one that issued the verified token.
                user_pool_id: optional(env, "USER_POOL_ID"),
                idp_group_claim,
                idp_group_map,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [
            ("REQUESTS_TABLE", "requests"),
            ("AUDIT_TABLE", "audit"),
            ("DATALAKE_BUCKET", "datalake"),
            ("STAGING_BUCKET", "staging"),
            (
                "RELEASE_SIGNING_KEY_ID",
                "arn:aws:kms:eu-west-2:1:key/release",
            ),
            ("IG_REVIEWER_GROUP", "InformationGovernance"),
            ("RIT_REVIEWER_GROUP", "ResearchIT"),
            (
                "DATALAKE_KMS_KEY_ARN",
                "arn:aws:kms:eu-west-2:1:key/datalake",
            ),
            ("SENDER_EMAIL", "egress@example.org"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        env
    }

    #[test]
    fn when_only_the_required_variables_are_set_then_the_defaults_apply() {
        let config = Config::from_env(&env(&[])).unwrap();
        let s = &config.settings;
        assert_eq!(
            s.policy.download_groups,
            vec!["InformationGovernance", "ResearchIT"]
        );
        assert_eq!(s.policy.max_downloads, 3);
        assert_eq!(s.url_expiry, Duration::from_secs(300));
        assert_eq!(s.list_max_age_days, 0);
        assert_eq!(s.user_pool_id, None);
        let config = Config::from_env(&env(&[("USER_POOL_ID", "eu-west-2_pool")])).unwrap();
        assert_eq!(
            config.settings.user_pool_id.as_deref(),
            Some("eu-west-2_pool")
        );
    }

    #[test]
    fn when_each_required_variable_is_missing_then_init_fails_naming_it() {
        for var in [
            "REQUESTS_TABLE",
            "AUDIT_TABLE",
            "DATALAKE_BUCKET",
            "STAGING_BUCKET",
            "RELEASE_SIGNING_KEY_ID",
            "IG_REVIEWER_GROUP",
            "RIT_REVIEWER_GROUP",
            "DATALAKE_KMS_KEY_ARN",
            "SENDER_EMAIL",
        ] {
            let mut e = env(&[]);
            e.remove(var);
            let err = Config::from_env(&e).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn when_download_groups_are_listed_then_they_are_deduplicated() {
        let config = Config::from_env(&env(&[(
            "DOWNLOAD_GROUPS",
            "InformationGovernance,DataCustodian,DataCustodian",
        )]))
        .unwrap();
        assert_eq!(
            config.settings.policy.download_groups,
            vec!["InformationGovernance", "DataCustodian"]
        );
        let err = Config::from_env(&env(&[("DOWNLOAD_GROUPS", "a,,b")])).unwrap_err();
        assert!(err.to_string().contains("DOWNLOAD_GROUPS"), "{err}");
    }

    #[test]
    fn when_the_expiry_is_out_of_bounds_then_init_fails() {
        for bad in ["0", "3601", "86400", "soon"] {
            let err = Config::from_env(&env(&[("DOWNLOAD_URL_EXPIRY_SECONDS", bad)])).unwrap_err();
            assert!(
                err.to_string().contains("DOWNLOAD_URL_EXPIRY_SECONDS"),
                "{bad}: {err}"
            );
        }
        let config = Config::from_env(&env(&[("DOWNLOAD_URL_EXPIRY_SECONDS", "3600")])).unwrap();
        assert_eq!(config.settings.url_expiry, Duration::from_secs(3600));
    }

    #[test]
    fn when_an_idp_group_map_is_set_then_it_is_the_triggers_mapping() {
        let config = Config::from_env(&env(&[])).unwrap();
        assert_eq!(config.settings.idp_group_claim, "custom:idp_groups");
        assert_eq!(config.settings.idp_group_map, IdpGroupMap::default());
        let config = Config::from_env(&env(&[(
            "IDP_GROUP_MAP",
            "tre-ig=InformationGovernance,tre-rit=ResearchIT",
        )]))
        .unwrap();
        assert_eq!(
            config
                .settings
                .idp_group_map
                .reviewer_groups(&["tre-rit".to_string()]),
            vec!["ResearchIT"]
        );
        for (var, bad) in [
            ("IDP_GROUP_MAP", "tre-ig=Admins"),
            ("IDP_GROUP_CLAIM", "profile"),
        ] {
            let err = Config::from_env(&env(&[(var, bad)])).unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn when_both_stages_share_a_group_or_limits_are_absurd_then_init_fails() {
        let err =
            Config::from_env(&env(&[("RIT_REVIEWER_GROUP", "InformationGovernance")])).unwrap_err();
        assert!(err.to_string().contains("must differ"), "{err}");
        let err = Config::from_env(&env(&[("MAX_DOWNLOADS", "5000")])).unwrap_err();
        assert!(err.to_string().contains("MAX_DOWNLOADS"), "{err}");
        let err = Config::from_env(&env(&[("LIST_MAX_AGE_DAYS", "-1")])).unwrap_err();
        assert!(err.to_string().contains("LIST_MAX_AGE_DAYS"), "{err}");
    }

    #[test]
    fn when_the_admin_group_is_unset_or_invalid_then_the_default_applies_or_init_fails() {
        let config = Config::from_env(&env(&[])).unwrap();
        assert_eq!(config.admin_group, "EgressAdmin");
        let config = Config::from_env(&env(&[("ADMIN_GROUP", "TreAdmins")])).unwrap();
        assert_eq!(config.admin_group, "TreAdmins");
        for bad in ["Tre Admins", "ResearchIT"] {
            let err = Config::from_env(&env(&[("ADMIN_GROUP", bad)])).unwrap_err();
            assert!(err.to_string().starts_with("ADMIN_GROUP"), "{bad}: {err}");
        }
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new(env(&[]));
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
