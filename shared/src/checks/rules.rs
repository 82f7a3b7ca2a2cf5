//! The stable rule ids and their plain-English messages. Ids never change meaning: reports,
//! the API and projects' exceptions refer to them.

/// A rule: its id and what a finding of it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// Plain-English message of a finding.
    pub message: &'static str,
}

macro_rules! rules {
    ($($name:ident = $id:literal, $msg:literal;)*) => {
        $(
            #[doc = $msg]
            pub const $name: Rule = Rule { id: $id, message: $msg };
        )*
        /// Every rule, for the report's statement of what was applied.
        pub const ALL: &[Rule] = &[$($name),*];
    };
}

rules! {
    TYPE_MISMATCH = "file-type-mismatch", "The file's content is not of the type its extension says.";
    TYPE_EXECUTABLE = "file-type-executable", "The file is an executable program.";
    TYPE_SCRIPT = "file-type-script", "The file is a script.";
    TYPE_LISTED = "file-type-listed", "The file's extension is on the project's review or block list.";
    HIDDEN_FILE = "file-hidden", "The file is hidden (its name or a folder starts with a dot).";
    GIT_FOLDER = "file-git-folder", "The file is inside a .git folder (version history can hold removed data).";
    SIZE_FILE = "size-file", "The file is larger than the project's per-file limit.";
    SIZE_REQUEST = "size-request", "The request is larger than the project's per-request limit.";
    SMALL_COUNTS = "table-small-counts", "The table has counts above zero and below the project's threshold (small cells can identify people).";
    RECORD_LEVEL = "table-record-level", "The table looks like record-level data: many rows with identifier-like columns whose values are unique per row.";
    NHS_NUMBER = "pii-nhs-number", "The file contains NHS numbers (10 digits passing the modulus-11 check).";
    POSTCODE = "pii-postcode", "The file contains UK postcodes.";
    EMAIL = "pii-email", "The file contains e-mail addresses.";
    PHONE = "pii-phone", "The file contains UK phone numbers.";
    NI_NUMBER = "pii-ni-number", "The file contains National Insurance numbers.";
    DATE_OF_BIRTH = "pii-date-of-birth", "The file contains dates of birth.";
    IP_ADDRESS = "pii-ip-address", "The file contains IP addresses.";
    ARCHIVE_ENCRYPTED = "archive-encrypted", "The archive is encrypted or password-protected: its content cannot be checked.";
    ARCHIVE_DEPTH = "archive-depth", "Archives are nested deeper than the project's limit.";
    ARCHIVE_ENTRIES = "archive-entries", "The archive has more entries than the project's limit.";
    ARCHIVE_EXPANSION = "archive-expansion", "The archive expands far beyond its size (a zip bomb).";
    ARCHIVE_UNREADABLE = "archive-unreadable", "The archive could not be read to its end: entries after the fault were not checked.";
    ARCHIVE_NOT_INSPECTED = "archive-not-inspected", "The archive's format is not opened by the checks: its entries were not checked.";
    MALWARE = "malware-signature", "The file holds a known malware signature (the EICAR test string stands in for the scanner locally).";
    MALWARE_SCAN = "malware-scan", "The staging bucket's malware scanner (GuardDuty Malware Protection for S3) found a threat in the file.";
    MALWARE_SCAN_PENDING = "malware-scan-not-finished", "The malware scan of the file had not finished (or could not be made) when the checks had to go on: a reviewer should wait for it or check the file.";
    IMAGE_GPS = "image-gps", "The image's metadata (EXIF or XMP) holds a GPS position, which can locate a person or place.";
    IMAGE_IDENTIFYING = "image-identifying-metadata", "The image's metadata (EXIF or XMP) names a person or a device (owner, artist, serial number).";
    SPREADSHEET_UNCHECKED = "spreadsheet-not-checked", "The spreadsheet could not be checked (too large to check, or unreadable): its sheets were not checked.";
    ACRO_VERIFIED = "acro-verified", "ACRO's results.json was found: its checksums were verified against the submitted files and its outputs imported into this report.";
    ACRO_CHECKSUM_MISMATCH = "acro-checksum-mismatch", "A file differs from the SHA-256 checksum ACRO recorded for it: it changed after ACRO checked it.";
    ACRO_FILE_MISSING = "acro-file-missing", "A file ACRO's results.json or checksums name is not in the submission.";
    ACRO_UNVERIFIED = "acro-file-unverified", "An output file ACRO's results.json names has no ACRO checksum to verify it against.";
    ACRO_OUTPUT_STATUS = "acro-output-status", "ACRO's own disclosure check of an output did not pass (status fail or review): see its status and the researcher's exception.";
    ACRO_UNREADABLE = "acro-results-unreadable", "ACRO's results.json could not be read: its outputs were not imported.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_rules_are_listed_then_ids_are_unique_and_messages_plain() {
        let mut ids: Vec<_> = ALL.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len());
        assert!(ALL.iter().all(|r| r.message.ends_with('.')));
    }
}
