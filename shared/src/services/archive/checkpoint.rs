//! Where an archive left off: what a later invocation needs to continue it.
//!
//! Saved in the staging bucket (`.checkpoints/<workspace_id>/<egress_request_id>.json`,
//! encrypted with the staging key) when an invocation stops for lack of time, and once right
//! after the multipart upload is created, so that even a crash before the first stop leaves
//! the upload findable. It is JSON of bounded size per file (a CRC-32 per completed entry),
//! kept in S3 rather than in the request item because 100,000 files would exceed DynamoDB's
//! 400 KB item limit.
//!
//! The position is a part boundary `at` (every byte before it is in parts S3 accepted), the
//! entry whose span holds it, how much of that entry's data lies before it, and the running
//! CRC-32 and SHA-256 of that data (the SHA-256 state serialised, so no byte is read twice).

use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::Sha256;

use crate::error::{EgressError, Result};
use crate::ports::UploadedPart;

/// The checkpoint format; another version is ignored (the archive starts over).
pub(super) const VERSION: u32 = 1;

/// One accepted part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SavedPart {
    /// Part number.
    pub n: i32,
    /// Its entity tag.
    pub e: String,
}

/// A place in the archive, at a part boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Position {
    /// Archive bytes already in accepted parts.
    pub at: u64,
    /// The entry whose span (header, data, descriptor) holds `at`; the entry count when
    /// `at` is in the central directory.
    pub entry: usize,
    /// Bytes of that entry's data before `at`.
    pub data_done: u64,
    /// CRC-32 of those bytes.
    pub crc32: u32,
    /// SHA-256 state after those bytes, hex (`SerializableState`).
    pub sha256_state: String,
    /// CRC-32 of every entry before `entry`, 8 hex digits each.
    pub crcs: String,
}

impl Position {
    /// The start of an archive.
    pub(super) fn start() -> Self {
        Self {
            at: 0,
            entry: 0,
            data_done: 0,
            crc32: 0,
            sha256_state: encode_sha(&Sha256::default()),
            crcs: String::new(),
        }
    }

    /// The CRC-32 of the entries before `entry`.
    pub(super) fn entry_crcs(&self) -> Result<Vec<u32>> {
        let bad = || EgressError::Internal("the archive checkpoint's CRC list is corrupt".into());
        if self.entry.checked_mul(8) != Some(self.crcs.len()) {
            return Err(bad());
        }
        self.crcs
            .as_bytes()
            .chunks(8)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .ok_or_else(bad)
            })
            .collect()
    }
}

/// The CRC list of a [`Position`].
pub(super) fn encode_crcs(crcs: &[u32]) -> String {
    crcs.iter().map(|c| format!("{c:08x}")).collect()
}

/// A SHA-256 state as hex.
pub(super) fn encode_sha(hasher: &Sha256) -> String {
    hex::encode(hasher.serialize().as_slice())
}

/// The SHA-256 state a checkpoint saved.
pub(super) fn decode_sha(state: &str) -> Result<Sha256> {
    let bad = || EgressError::Internal("the archive checkpoint's SHA-256 state is corrupt".into());
    let bytes = hex::decode(state).map_err(|_| bad())?;
    let serialized = SerializedState::<Sha256>::try_from(bytes.as_slice()).map_err(|_| bad())?;
    Sha256::deserialize(&serialized).map_err(|_| bad())
}

/// Everything a continuation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    /// [`VERSION`].
    pub version: u32,
    /// The multipart upload being written.
    pub upload_id: String,
    /// The manifest the archive is built from.
    pub manifest_sha256: String,
    /// The archive's size when complete.
    pub archive_size: u64,
    /// Bytes per part.
    pub part_size: u64,
    /// The entries' timestamp ([`crate::zipstream::DosDateTime::to_raw`]).
    pub modified: u32,
    /// Parts accepted, in order: 1..=n, each `part_size` bytes.
    pub parts: Vec<SavedPart>,
    /// Where the next part starts.
    pub position: Position,
}

impl Checkpoint {
    /// The accepted parts as `CompleteMultipartUpload` takes them.
    pub(super) fn uploaded(&self) -> Vec<UploadedPart> {
        self.parts
            .iter()
            .map(|p| UploadedPart {
                part_number: p.n,
                e_tag: p.e.clone(),
            })
            .collect()
    }

    /// True when it describes an archive of exactly this manifest, size and part size, and
    /// its parts and position agree with each other.
    pub(super) fn fits(&self, manifest_sha256: &str, archive_size: u64, part_size: u64) -> bool {
        self.version == VERSION
            && self.manifest_sha256 == manifest_sha256
            && self.archive_size == archive_size
            && self.part_size == part_size
            && self.position.at == self.parts.len() as u64 * part_size
            && self.position.at <= archive_size
            && self
                .parts
                .iter()
                .enumerate()
                .all(|(i, p)| p.n == i as i32 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn when_a_sha256_state_is_saved_and_restored_then_hashing_continues_where_it_stopped() {
        let mut first = Sha256::new();
        first.update(b"hello ");
        let mut restored = decode_sha(&encode_sha(&first)).unwrap();
        restored.update(b"world");
        assert_eq!(restored.finalize(), Sha256::digest(b"hello world"));
    }

    #[test]
    fn when_the_crc_list_is_saved_then_it_reads_back_and_a_corrupt_one_is_refused() {
        let crcs = vec![0, 0xDEAD_BEEF, 7];
        let position = Position {
            entry: 3,
            crcs: encode_crcs(&crcs),
            ..Position::start()
        };
        assert_eq!(position.entry_crcs().unwrap(), crcs);
        let short = Position {
            entry: 4,
            ..position
        };
        assert!(short.entry_crcs().is_err());
        assert!(decode_sha("zz").is_err());
    }

    #[test]
    fn when_a_checkpoint_names_an_entry_past_usize_then_its_crc_list_is_refused_not_a_panic() {
        // Found by `make fuzz` (archive_checkpoint): `entry * 8` overflowed.
        let position = Position {
            entry: usize::MAX,
            ..Position::start()
        };
        assert!(position.entry_crcs().is_err());
    }
}
