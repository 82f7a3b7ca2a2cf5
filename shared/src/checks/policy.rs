//! The checks' policy: thresholds and lists a project can change without code, validated
//! before use (at deploy by the template gate, at cold start by `check-outputs`), and recorded
//! by version in every report.

use serde::{Deserialize, Serialize};

use super::Severity;
use crate::error::EgressError;

/// What a `block` finding does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Findings are shown; reviewers decide.
    #[default]
    Advise,
    /// A `block` finding rejects the request automatically, with the findings as the reason.
    Enforce,
}

impl Mode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Advise => "advise",
            Mode::Enforce => "enforce",
        }
    }
}

/// Size limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SizePolicy {
    /// Largest file, in bytes, before the size rule fires.
    pub max_file_bytes: u64,
    /// Largest request (all files), in bytes.
    pub max_request_bytes: u64,
    /// What a size finding is.
    pub severity: Severity,
}

impl Default for SizePolicy {
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024 * 1024,
            max_request_bytes: 10 * 1024 * 1024 * 1024,
            severity: Severity::Review,
        }
    }
}

/// File-type lists, by extension (lower case, without the dot) and by category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypePolicy {
    /// Extensions that pass whatever their category (e.g. `py` when a project exports code).
    pub allow_extensions: Vec<String>,
    /// Extensions that need a reviewer's look.
    pub review_extensions: Vec<String>,
    /// Extensions that are refused.
    pub block_extensions: Vec<String>,
    /// Executables (by content or extension).
    pub executables: Severity,
    /// Scripts (a `#!` first line, or a script extension).
    pub scripts: Severity,
    /// Encrypted or password-protected archives: their content cannot be checked.
    pub encrypted_archives: Severity,
    /// Hidden files (a path segment starting with `.`).
    pub hidden_files: Severity,
    /// Anything under a `.git` folder.
    pub git_folders: Severity,
    /// The content's type disagrees with the extension.
    pub extension_mismatch: Severity,
}

impl Default for TypePolicy {
    fn default() -> Self {
        Self {
            allow_extensions: Vec::new(),
            review_extensions: Vec::new(),
            block_extensions: Vec::new(),
            executables: Severity::Review,
            scripts: Severity::Review,
            encrypted_archives: Severity::Block,
            hidden_files: Severity::Review,
            git_folders: Severity::Review,
            extension_mismatch: Severity::Review,
        }
    }
}

/// Statistical disclosure control on tables (CSV/TSV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TablePolicy {
    /// Counts above 0 and below this are small (the SDC handbooks' usual 10).
    pub small_count_threshold: u64,
    /// Whether a zero count is also a finding (structural zeros can disclose).
    pub flag_zeros: bool,
    /// What a small count is.
    pub small_counts: Severity,
    /// Rows from which a table with identifier-like, mostly unique columns is record-level.
    pub record_level_min_rows: u64,
    /// What record-level data is.
    pub record_level: Severity,
    /// Largest spreadsheet (.xlsx, .xlsm, .xlsb, .xls, .ods) read, in bytes: a workbook is
    /// read whole, so a larger one (or one whose parts expand past 4 times this) is reported
    /// "too large to check" for review instead.
    pub max_spreadsheet_bytes: u64,
}

impl Default for TablePolicy {
    fn default() -> Self {
        Self {
            small_count_threshold: 10,
            flag_zeros: false,
            small_counts: Severity::Review,
            record_level_min_rows: 50,
            record_level: Severity::Review,
            max_spreadsheet_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Personal identifiers in text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentifierPolicy {
    /// NHS numbers (10 digits passing the modulus-11 check).
    pub nhs_numbers: Severity,
    /// UK postcodes.
    pub postcodes: Severity,
    /// E-mail addresses.
    pub emails: Severity,
    /// UK phone numbers.
    pub phone_numbers: Severity,
    /// National Insurance numbers.
    pub ni_numbers: Severity,
    /// Dates of birth (a date next to "DOB", "born", "date of birth", or in such a column).
    pub dates_of_birth: Severity,
    /// IPv4 addresses.
    pub ip_addresses: Severity,
}

impl Default for IdentifierPolicy {
    fn default() -> Self {
        Self {
            nhs_numbers: Severity::Block,
            postcodes: Severity::Review,
            emails: Severity::Review,
            phone_numbers: Severity::Review,
            ni_numbers: Severity::Block,
            dates_of_birth: Severity::Review,
            ip_addresses: Severity::Review,
        }
    }
}

/// Archives inside the submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchivePolicy {
    /// Deepest nesting of archives inside archives that is opened.
    pub max_depth: u32,
    /// Most entries in one archive.
    pub max_entries: u64,
    /// Largest expanded size / compressed size of one archive.
    pub max_expansion_ratio: u64,
    /// Most bytes one archive may expand to.
    pub max_expanded_bytes: u64,
}

impl Default for ArchivePolicy {
    fn default() -> Self {
        Self {
            max_depth: 3,
            max_entries: 10_000,
            max_expansion_ratio: 100,
            max_expanded_bytes: 4 * 1024 * 1024 * 1024,
        }
    }
}

/// Images' metadata (EXIF in JPEG, TIFF, PNG, WebP and HEIF; XMP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagePolicy {
    /// A GPS position (latitude or longitude).
    pub gps: Severity,
    /// A person or a device named: camera owner, artist or creator, body or lens serial number.
    pub identifying_metadata: Severity,
}

impl Default for ImagePolicy {
    fn default() -> Self {
        Self {
            gps: Severity::Review,
            identifying_metadata: Severity::Review,
        }
    }
}

/// ACRO's `results.json` in a submission: its checksums verified, its outputs imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcroPolicy {
    /// A submitted file differs from ACRO's checksum of it.
    pub checksum_mismatch: Severity,
    /// A file ACRO names is not submitted.
    pub file_missing: Severity,
    /// An output file has no ACRO checksum.
    pub unverified: Severity,
    /// An output ACRO did not pass (`fail` or `review`, with or without an exception).
    pub output_not_passed: Severity,
}

impl Default for AcroPolicy {
    fn default() -> Self {
        Self {
            checksum_mismatch: Severity::Block,
            file_missing: Severity::Review,
            unverified: Severity::Review,
            output_not_passed: Severity::Review,
        }
    }
}

/// The staging bucket's malware scanner (GuardDuty Malware Protection for S3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MalwarePolicy {
    /// `THREATS_FOUND`.
    pub threats_found: Severity,
    /// No result in time, or a scan that could not be made (`UNSUPPORTED`, `ACCESS_DENIED`,
    /// `FAILED`).
    pub scan_not_finished: Severity,
}

impl Default for MalwarePolicy {
    fn default() -> Self {
        Self {
            threats_found: Severity::Block,
            scan_not_finished: Severity::Review,
        }
    }
}

/// The whole policy of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Recorded in every report, so a finding can be traced to the rules that produced it.
    pub version: String,
    /// `advise` or `enforce`.
    pub mode: Mode,
    /// Size limits.
    pub size: SizePolicy,
    /// File-type lists.
    pub types: TypePolicy,
    /// Tables.
    pub tables: TablePolicy,
    /// Personal identifiers.
    pub identifiers: IdentifierPolicy,
    /// Archives.
    pub archives: ArchivePolicy,
    /// Images' metadata.
    pub images: ImagePolicy,
    /// ACRO's results.
    pub acro: AcroPolicy,
    /// The malware scanner's results.
    pub malware: MalwarePolicy,
}

/// The highest spreadsheet limit a policy may set: a workbook is read whole in memory.
pub const MAX_SPREADSHEET_BYTES: u64 = 256 * 1024 * 1024;

/// The version of the built-in defaults.
pub const DEFAULT_POLICY_VERSION: &str = "default-1";

impl Default for Policy {
    fn default() -> Self {
        Self {
            version: DEFAULT_POLICY_VERSION.into(),
            mode: Mode::Advise,
            size: SizePolicy::default(),
            types: TypePolicy::default(),
            tables: TablePolicy::default(),
            identifiers: IdentifierPolicy::default(),
            archives: ArchivePolicy::default(),
            images: ImagePolicy::default(),
            acro: AcroPolicy::default(),
            malware: MalwarePolicy::default(),
        }
    }
}

fn invalid(what: String) -> EgressError {
    EgressError::validation(format!("the checks policy is not valid: {what}"))
}

impl Policy {
    /// Parses and validates a policy from JSON; an empty string is the defaults. Missing
    /// members take their defaults; unknown members are refused (a typo must not silently
    /// drop a rule).
    pub fn from_json(json: &str) -> Result<Self, EgressError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = &mut serde_json::Deserializer::from_str(json);
        let policy: Policy = serde_path_to_error::deserialize(de)
            .map_err(|e| invalid(format!("at {}: {}", e.path(), e.inner())))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Refuses values that would make a rule meaningless.
    pub fn validate(&self) -> Result<(), EgressError> {
        let version = self.version.trim();
        if version.is_empty() || version.len() > 64 {
            return Err(invalid("version must be 1 to 64 characters".into()));
        }
        if self.size.max_file_bytes == 0 || self.size.max_request_bytes == 0 {
            return Err(invalid("size limits must be above 0".into()));
        }
        if self.tables.small_count_threshold == 0 || self.tables.small_count_threshold > 1_000 {
            return Err(invalid(
                "tables.small_count_threshold must be 1 to 1000".into(),
            ));
        }
        if self.tables.max_spreadsheet_bytes == 0
            || self.tables.max_spreadsheet_bytes > MAX_SPREADSHEET_BYTES
        {
            return Err(invalid(format!(
                "tables.max_spreadsheet_bytes must be 1 to {MAX_SPREADSHEET_BYTES}"
            )));
        }
        if self.tables.record_level_min_rows == 0 {
            return Err(invalid(
                "tables.record_level_min_rows must be above 0".into(),
            ));
        }
        let a = &self.archives;
        if a.max_depth > 10 || a.max_entries == 0 || a.max_expansion_ratio == 0 {
            return Err(invalid(
                "archives: max_depth 0 to 10, max_entries and max_expansion_ratio above 0".into(),
            ));
        }
        for (list, exts) in [
            ("allow_extensions", &self.types.allow_extensions),
            ("review_extensions", &self.types.review_extensions),
            ("block_extensions", &self.types.block_extensions),
        ] {
            if let Some(bad) = exts.iter().find(|e| {
                e.is_empty()
                    || e.len() > 16
                    || !e
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            }) {
                return Err(invalid(format!(
                    "types.{list}: {bad:?} is not a lower-case extension without its dot"
                )));
            }
        }
        Ok(())
    }
}

/// The policies of a deployment: a default and, optionally, one per SWB project id (a stack
/// normally serves one project; several projects sharing one stack can differ).
///
/// `CHECKS_POLICY` is either one [`Policy`] (every project) or
/// `{"default": Policy, "projects": {"<project_id>": Policy}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProjectPolicies {
    /// For projects not listed.
    #[serde(default)]
    pub default: Policy,
    /// By SWB project id.
    #[serde(default)]
    pub projects: std::collections::BTreeMap<String, Policy>,
}

impl ProjectPolicies {
    /// Parses and validates either form; an empty string is the defaults.
    pub fn from_json(json: &str) -> Result<Self, EgressError> {
        let value: serde_json::Value = if json.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(json).map_err(|e| invalid(format!("not JSON: {e}")))?
        };
        let per_project = value
            .as_object()
            .is_some_and(|o| o.contains_key("default") || o.contains_key("projects"));
        if !per_project {
            return Ok(Self {
                default: Policy::from_json(json)?,
                projects: Default::default(),
            });
        }
        let policies: ProjectPolicies = serde_path_to_error::deserialize(value)
            .map_err(|e| invalid(format!("at {}: {}", e.path(), e.inner())))?;
        policies.default.validate()?;
        for (project, p) in &policies.projects {
            p.validate()
                .map_err(|e| invalid(format!("project {project:?}: {e}")))?;
        }
        Ok(policies)
    }

    /// The policy of `project_id`.
    pub fn for_project(&self, project_id: &str) -> &Policy {
        self.projects.get(project_id).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_policies_are_given_per_project_then_each_project_gets_its_own_and_others_the_default() {
        let all = ProjectPolicies::from_json(
            r#"{"default":{"mode":"advise"},"projects":{"proj-b":{"version":"b-1","mode":"enforce"}}}"#,
        )
        .unwrap();
        assert_eq!(all.for_project("proj-b").mode, Mode::Enforce);
        assert_eq!(all.for_project("proj-a").mode, Mode::Advise);
        let one = ProjectPolicies::from_json(r#"{"mode":"enforce"}"#).unwrap();
        assert_eq!(one.for_project("any").mode, Mode::Enforce);
        assert!(ProjectPolicies::from_json(r#"{"projects":{"p":{"mode":"x"}}}"#).is_err());
        assert!(ProjectPolicies::from_json("{not json").is_err());
        assert_eq!(
            ProjectPolicies::from_json("").unwrap(),
            ProjectPolicies::default()
        );
    }

    #[test]
    fn when_the_json_is_empty_then_the_defaults_apply() {
        let p = Policy::from_json("  ").unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.tables.small_count_threshold, 10);
        assert_eq!(p.types.encrypted_archives, Severity::Block);
    }

    #[test]
    fn when_some_members_are_given_then_the_others_keep_their_defaults() {
        let p = Policy::from_json(
            r#"{"version":"proj-a-3","mode":"enforce","tables":{"small_count_threshold":5}}"#,
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.tables.small_count_threshold, 5);
        assert!(!p.tables.flag_zeros);
        assert_eq!(p.size, SizePolicy::default());
    }

    #[test]
    fn when_a_member_is_misspelt_then_the_policy_is_refused_naming_it() {
        let err = Policy::from_json(r#"{"tables":{"small_count_treshold":5}}"#).unwrap_err();
        assert!(err.to_string().contains("tables"), "{err}");
        assert_eq!(err.error_type(), "ValidationError");
    }

    #[test]
    fn when_a_threshold_is_zero_or_a_list_holds_a_dotted_extension_then_it_is_refused() {
        assert!(Policy::from_json(r#"{"tables":{"small_count_threshold":0}}"#).is_err());
        assert!(Policy::from_json(r#"{"types":{"review_extensions":[".exe"]}}"#).is_err());
        assert!(Policy::from_json(r#"{"version":""}"#).is_err());
        assert!(Policy::from_json(r#"{"mode":"strict"}"#).is_err());
    }
}
