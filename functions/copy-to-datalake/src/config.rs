//! Configuration, read once at init.

use shared::config::{parsed_or, required, Env};
use shared::services::archive::ArchiveSettings;
use shared::EgressError;

/// Part size unless `ARCHIVE_PART_SIZE_MIB` says otherwise: a few 16 MiB buffers fit the
/// smallest sensible Lambda memory with room to spare.
const DEFAULT_PART_SIZE_MIB: u64 = 16;
/// S3 refuses parts below 5 MiB (but the last).
const MIN_PART_SIZE_MIB: u64 = 5;
/// A few buffers of this size must fit in the function's memory (at most 10 GiB).
const MAX_PART_SIZE_MIB: u64 = 512;

/// What `copy-to-datalake` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) requests_table: String,
    pub(crate) audit_table: String,
    pub(crate) archive: ArchiveSettings,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "ARCHIVE_PART_SIZE_MIB",
    "AUDIT_TABLE",
    "DATALAKE_BUCKET",
    "DATALAKE_KMS_KEY_ARN",
    "REQUESTS_TABLE",
    "STAGING_BUCKET",
];

impl Config {
    /// Fails with the name of the first missing or malformed variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let part_mib: u64 = parsed_or(env, "ARCHIVE_PART_SIZE_MIB", DEFAULT_PART_SIZE_MIB)?;
        if !(MIN_PART_SIZE_MIB..=MAX_PART_SIZE_MIB).contains(&part_mib) {
            return Err(EgressError::Config(format!(
                "environment variable ARCHIVE_PART_SIZE_MIB must be between {MIN_PART_SIZE_MIB} and {MAX_PART_SIZE_MIB}, got {part_mib}"
            )));
        }
        Ok(Self {
            requests_table: required(env, "REQUESTS_TABLE")?,
            audit_table: required(env, "AUDIT_TABLE")?,
            archive: ArchiveSettings::new(
                required(env, "STAGING_BUCKET")?,
                required(env, "DATALAKE_BUCKET")?,
                required(env, "DATALAKE_KMS_KEY_ARN")?,
                part_mib * 1024 * 1024,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ENV: [(&str, &str); 5] = [
        ("REQUESTS_TABLE", "egress-requests"),
        ("AUDIT_TABLE", "egress-audit"),
        ("STAGING_BUCKET", "egress-staging"),
        ("DATALAKE_BUCKET", "project-datalake"),
        (
            "DATALAKE_KMS_KEY_ARN",
            "arn:aws:kms:eu-west-2:123456789012:key/datalake",
        ),
    ];

    fn env_with(extra: &[(&str, &str)], without: &str) -> HashMap<String, String> {
        ENV.iter()
            .chain(extra)
            .filter(|(k, _)| *k != without)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn when_the_part_size_is_not_set_then_it_is_16_mib() {
        let config = Config::from_env(&ENV).unwrap();
        assert_eq!(config.archive.part_size, 16 * 1024 * 1024);
        assert_eq!(config.archive.datalake_bucket, "project-datalake");
    }

    #[test]
    fn when_a_variable_is_missing_then_init_fails_naming_it() {
        for (missing, _) in ENV {
            let err = Config::from_env(&env_with(&[], missing)).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn when_the_part_size_is_below_s3s_minimum_or_absurd_then_init_fails_naming_it() {
        for bad in ["4", "0", "513", "sixteen"] {
            let err =
                Config::from_env(&env_with(&[("ARCHIVE_PART_SIZE_MIB", bad)], "")).unwrap_err();
            assert!(err.to_string().contains("ARCHIVE_PART_SIZE_MIB"), "{err}");
        }
        let ok = Config::from_env(&env_with(&[("ARCHIVE_PART_SIZE_MIB", "5")], "")).unwrap();
        assert_eq!(ok.archive.part_size, 5 * 1024 * 1024);
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new(ENV);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
