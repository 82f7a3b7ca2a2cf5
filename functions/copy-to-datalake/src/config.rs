//! Configuration, read once at init.

use shared::config::{parsed_or, required, Env};
use shared::services::archive::ArchiveSettings;
use shared::EgressError;

/// Part size unless `ARCHIVE_PART_SIZE_MIB` says otherwise: with four uploads in flight, five
/// 6 MiB buffers (38 MiB) and 8 MiB of read-ahead keep the whole process within 64 MiB
/// (measured by `make bench-e2e-archive`: five 8 MiB buffers and 16 MiB took it to 70-85 MiB).
const DEFAULT_PART_SIZE_MIB: u64 = 6;
/// `UploadPart` calls in flight unless `ARCHIVE_UPLOAD_CONCURRENCY` says otherwise.
const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;
/// Bytes read ahead of the zip writer unless `ARCHIVE_READ_AHEAD_MIB` says otherwise: two
/// 4 MiB ranges flowing while the next requests' round trips are under way.
const DEFAULT_READ_AHEAD_MIB: u64 = 8;
/// `GetObject` calls in flight unless `ARCHIVE_READ_REQUESTS` says otherwise: enough to hide
/// a 20 ms round trip behind small files. Each response sent ahead of its byte share costs
/// about 1 MiB of transport buffers (measured: 16 requests took 8-11 MiB more than 4 or 8).
const DEFAULT_READ_REQUESTS: usize = 8;
/// An invocation saves its place when less than this remains (`ARCHIVE_RESERVE_SECONDS`):
/// time for the parts in flight and the checkpoint.
const DEFAULT_RESERVE_SECONDS: u64 = 60;
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
    /// The KMS key that signs release records (`RELEASE_SIGNING_KEY_ID`; the template always
    /// sets it, unset leaves records unsigned).
    pub(crate) release_signing_key_id: Option<String>,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "ARCHIVE_PART_SIZE_MIB",
    "ARCHIVE_READ_AHEAD_MIB",
    "ARCHIVE_READ_REQUESTS",
    "ARCHIVE_RESERVE_SECONDS",
    "ARCHIVE_SLICE_SECONDS",
    "ARCHIVE_UPLOAD_CONCURRENCY",
    "AUDIT_TABLE",
    "DATALAKE_BUCKET",
    "DATALAKE_KMS_KEY_ARN",
    "RELEASE_SIGNING_KEY_ID",
    "REQUESTS_TABLE",
    "STAGING_BUCKET",
    "STAGING_KMS_KEY_ARN",
];

fn in_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, EgressError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(EgressError::Config(format!(
            "environment variable {name} must be between {} and {}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

impl Config {
    /// Fails with the name of the first missing or malformed variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let part_mib: u64 = parsed_or(env, "ARCHIVE_PART_SIZE_MIB", DEFAULT_PART_SIZE_MIB)?;
        if !(MIN_PART_SIZE_MIB..=MAX_PART_SIZE_MIB).contains(&part_mib) {
            return Err(EgressError::Config(format!(
                "environment variable ARCHIVE_PART_SIZE_MIB must be between {MIN_PART_SIZE_MIB} and {MAX_PART_SIZE_MIB}, got {part_mib}"
            )));
        }
        let read_ahead_mib = in_range(
            "ARCHIVE_READ_AHEAD_MIB",
            parsed_or(env, "ARCHIVE_READ_AHEAD_MIB", DEFAULT_READ_AHEAD_MIB)?,
            1..=1024,
        )?;
        let read_requests = in_range(
            "ARCHIVE_READ_REQUESTS",
            parsed_or(env, "ARCHIVE_READ_REQUESTS", DEFAULT_READ_REQUESTS)?,
            1..=64,
        )?;
        let reserve = in_range(
            "ARCHIVE_RESERVE_SECONDS",
            parsed_or(env, "ARCHIVE_RESERVE_SECONDS", DEFAULT_RESERVE_SECONDS)?,
            0..=840,
        )?;
        let slice: Option<f64> = match shared::config::optional(env, "ARCHIVE_SLICE_SECONDS") {
            Some(_) => Some(in_range(
                "ARCHIVE_SLICE_SECONDS",
                shared::config::parsed(env, "ARCHIVE_SLICE_SECONDS")?,
                0.0..=900.0,
            )?),
            None => None,
        };
        let upload_concurrency = in_range(
            "ARCHIVE_UPLOAD_CONCURRENCY",
            parsed_or(
                env,
                "ARCHIVE_UPLOAD_CONCURRENCY",
                DEFAULT_UPLOAD_CONCURRENCY,
            )?,
            1..=32,
        )?;
        let requests_table = required(env, "REQUESTS_TABLE")?;
        let audit_table = required(env, "AUDIT_TABLE")?;
        let release_signing_key_id = shared::config::optional(env, "RELEASE_SIGNING_KEY_ID");
        let mut archive = ArchiveSettings::new(
            required(env, "STAGING_BUCKET")?,
            required(env, "DATALAKE_BUCKET")?,
            required(env, "DATALAKE_KMS_KEY_ARN")?,
            part_mib * 1024 * 1024,
        );
        archive.staging_kms_key_arn = required(env, "STAGING_KMS_KEY_ARN")?;
        archive.upload_concurrency = upload_concurrency;
        archive.read_ahead.bytes = read_ahead_mib * 1024 * 1024;
        archive.read_ahead.requests = read_requests;
        archive.reserve = std::time::Duration::from_secs(reserve);
        archive.slice = slice.map(std::time::Duration::from_secs_f64);
        Ok(Self {
            requests_table,
            audit_table,
            archive,
            release_signing_key_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ENV: [(&str, &str); 6] = [
        ("REQUESTS_TABLE", "egress-requests"),
        ("AUDIT_TABLE", "egress-audit"),
        ("STAGING_BUCKET", "egress-staging"),
        ("DATALAKE_BUCKET", "project-datalake"),
        (
            "DATALAKE_KMS_KEY_ARN",
            "arn:aws:kms:eu-west-2:123456789012:key/datalake",
        ),
        (
            "STAGING_KMS_KEY_ARN",
            "arn:aws:kms:eu-west-2:123456789012:key/staging",
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
    fn when_the_tuning_is_not_set_then_the_defaults_keep_memory_within_64_mib() {
        let config = Config::from_env(&ENV).unwrap();
        assert_eq!(config.archive.part_size, 6 * 1024 * 1024);
        assert_eq!(config.archive.upload_concurrency, 4);
        assert_eq!(config.archive.read_ahead.bytes, 8 * 1024 * 1024);
        assert_eq!(config.archive.read_ahead.requests, 8);
        // The part buffers and the read-ahead leave the rest of 64 MiB to the process.
        let a = &config.archive;
        let buffers = (a.upload_concurrency as u64 + 1) * (a.part_size + 66 * 1024);
        assert!(buffers + a.read_ahead.bytes <= 48 * 1024 * 1024);
        assert_eq!(config.archive.slice, None);
        assert!(config.archive.staging_kms_key_arn.ends_with("key/staging"));
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
    fn when_the_tuning_is_set_then_it_applies_and_absurd_values_fail_naming_the_variable() {
        let config = Config::from_env(&env_with(
            &[
                ("ARCHIVE_UPLOAD_CONCURRENCY", "8"),
                ("ARCHIVE_READ_AHEAD_MIB", "32"),
                ("ARCHIVE_READ_REQUESTS", "4"),
                ("ARCHIVE_RESERVE_SECONDS", "120"),
                ("ARCHIVE_SLICE_SECONDS", "0.5"),
            ],
            "",
        ))
        .unwrap();
        let a = config.archive;
        assert_eq!((a.upload_concurrency, a.read_ahead.requests), (8, 4));
        assert_eq!(a.read_ahead.bytes, 32 * 1024 * 1024);
        assert_eq!(a.reserve.as_secs(), 120);
        assert_eq!(a.slice.unwrap().as_millis(), 500);
        for (name, bad) in [
            ("ARCHIVE_UPLOAD_CONCURRENCY", "0"),
            ("ARCHIVE_READ_AHEAD_MIB", "0"),
            ("ARCHIVE_READ_REQUESTS", "65"),
            ("ARCHIVE_RESERVE_SECONDS", "900"),
            ("ARCHIVE_SLICE_SECONDS", "-1"),
        ] {
            let err = Config::from_env(&env_with(&[(name, bad)], "")).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new(ENV);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
