//! Checks shared by the e2e tests and the demo: what was staged and what was archived,
//! compared byte for byte with the object versions SWB's snapshot named.

use shared::model::Manifest;

use crate::inspect::{self, Archive};
use crate::stack::Stack;
use crate::swb::Submission;
use crate::{Context, Result};

/// The staging manifest of a request (present while the request awaits review).
pub async fn staging_manifest(
    stack: &Stack,
    workspace_id: &str,
    egress_request_id: &str,
) -> Result<Manifest> {
    let bucket = stack.outputs.bucket("StagingBucket")?;
    let key = format!(".manifests/{workspace_id}/{egress_request_id}.json");
    let object = inspect::object(stack, bucket, &key, None)
        .await?
        .context(format!("no staging manifest at s3://{bucket}/{key}"))?;
    serde_json::from_slice(&object.body).context(format!("s3://{bucket}/{key} is not a Manifest"))
}

/// The archive holds exactly the submitted files at their relative paths, each byte for
/// byte the *submitted* version (read back from SWB's bucket by version id), plus the
/// manifest; the folder marker is not a file and is absent.
pub async fn archive_holds_submission(
    stack: &Stack,
    submission: &Submission,
    archive: &Archive,
) -> Result<()> {
    let manifest_name = format!("egress_manifest_{}.json", submission.egress_request_id);
    let mut expected: Vec<String> = submission.files.iter().map(|f| f.path.clone()).collect();
    expected.push(manifest_name.clone());
    // Beside the manifest (the signed release record): its signature.
    expected.push(format!("{manifest_name}.sig"));
    expected.sort();
    let actual: Vec<String> = archive.entries.keys().cloned().collect();
    if actual != expected {
        return Err(anyhow::anyhow!(
            "archive entries {actual:?}, expected {expected:?}"
        ));
    }
    for file in &submission.files {
        let submitted =
            inspect::object(stack, &submission.bucket, &file.key, Some(&file.version_id))
                .await?
                .context(format!("the submitted version of {} is gone", file.key))?;
        let archived = &archive.entries[&file.path];
        if archived != &submitted.body {
            return Err(anyhow::anyhow!(
                "{} in the archive (sha256 {}) differs from the submitted version {} (sha256 {})",
                file.path,
                inspect::sha256_hex(archived),
                file.version_id,
                inspect::sha256_hex(&submitted.body)
            ));
        }
        if inspect::sha256_hex(archived) != file.sha256 {
            return Err(anyhow::anyhow!(
                "{}: sha256 differs from what SWB submitted",
                file.path
            ));
        }
    }
    let manifest: Manifest = serde_json::from_slice(&archive.entries[&manifest_name])
        .context("the archive's manifest is not a Manifest")?;
    if manifest.egress_request_id != submission.egress_request_id
        || manifest.files.len() != submission.files.len()
    {
        return Err(anyhow::anyhow!(
            "the archive's manifest does not describe this request: {manifest:?}"
        ));
    }
    for entry in &manifest.files {
        let file = submission
            .files
            .iter()
            .find(|f| f.path == entry.path)
            .context(format!(
                "the manifest lists {} which was not submitted",
                entry.path
            ))?;
        if entry.version_id != file.version_id
            || entry.sha256 != file.sha256
            || entry.size != file.size
        {
            return Err(anyhow::anyhow!(
                "manifest entry {entry:?} does not match the submitted {file:?}"
            ));
        }
    }
    Ok(())
}
