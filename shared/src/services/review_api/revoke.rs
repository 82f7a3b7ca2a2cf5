//! `revokeRelease`: an admin withdraws an approved release (issue 14).
//!
//! Order matters. The status goes to `REVOKED` first, in one conditional write: from then on
//! no download is counted nor presigned (both require the final approval), so downloads stop
//! at once, and of two concurrent revocations only one wins. Then the archive is moved out of
//! the downloadable location (copied to `revoked/<key>`, then every version of the original
//! deleted: a URL presigned just before stops working too). The reason is appended to the
//! audit chain (action `revoked`), and the requester and the reviewers who approved are told.
//!
//! A move that fails after the status changed leaves a revoked request whose archive is still
//! at its key (not downloadable through the API, but present): calling `revokeRelease` again
//! finishes the move, and only a revocation that is complete is refused as a conflict.

use serde_json::{json, Value};

use super::evidence::{Evidence, EvidenceStore};
use super::ReviewService;
use crate::domain::review::revoke::{
    plan_revocation, revocation_emails, revoked_key, REVOKE_SUCCESS_MESSAGE,
};
use crate::domain::review::Reviewer;
use crate::error::{EgressError, Result};
use crate::model::{ApiEvent, CallerIdentity, EgressRequest, EgressStatus, RevokeReleaseInput};
use crate::ports::{
    AuditLog, Clock, Destination, DownloadLinks, Mailer, ObjectRef, ObjectStore, ReviewStore,
    ReviewerDirectory, RevocationClaim, RevocationStore, VersionedKey, WorkflowCallbacks,
    MAX_DELETE_BATCH, MAX_SINGLE_COPY,
};
use crate::services::multipart::copy_multipart;

const REVOKED: &str = "revoked";

/// Part size of the multipart copy of an archive beyond 5 GiB.
const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;
/// `UploadPartCopy` calls in flight (S3 copies server-side; the function only waits).
const COPY_CONCURRENCY: usize = 4;

/// What `revokeRelease` needs beyond the reviewer API's ports.
#[derive(Debug)]
pub struct Revocation<O, M> {
    /// The datalake (the archive's move).
    pub objects: O,
    /// The e-mails to the requester and the reviewers.
    pub mailer: M,
    /// The Cognito group whose members may revoke (`ADMIN_GROUP`).
    pub admin_group: String,
    /// The datalake's KMS key: the moved archive is encrypted with it, as the original was.
    pub datalake_kms_key_arn: String,
}

/// Where the archive went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The key it was moved to.
    pub to: String,
    /// Versions (and delete markers) of the original key deleted.
    pub deleted_versions: usize,
}

impl<S, D, W, A, L, C> ReviewService<S, D, W, A, L, C>
where
    S: ReviewStore + RevocationStore,
    D: ReviewerDirectory,
    W: WorkflowCallbacks,
    A: AuditLog,
    L: DownloadLinks,
    C: Clock,
{
    /// [`ReviewService::dispatch_with`] with `revokeRelease` answered from `revocation`.
    pub async fn dispatch_all<E, O, M>(
        &self,
        evidence: &Evidence<E>,
        revocation: &Revocation<O, M>,
        event: ApiEvent,
    ) -> Result<Value>
    where
        E: EvidenceStore,
        O: ObjectStore,
        M: Mailer,
    {
        match event.field.as_str() {
            "revokeRelease" => {
                let input: RevokeReleaseInput =
                    serde_json::from_value(event.arguments).map_err(|e| {
                        EgressError::validation(format!("invalid arguments for revokeRelease: {e}"))
                    })?;
                Ok(Value::String(
                    self.revoke_release(revocation, &event.identity, input)
                        .await?,
                ))
            }
            _ => self.dispatch_with(evidence, event).await,
        }
    }

    /// `revokeRelease`: for members of the admin group (as the pool grants it now), on a
    /// final approval only, once. See the module documentation for the order of effects.
    pub async fn revoke_release<O: ObjectStore, M: Mailer>(
        &self,
        revocation: &Revocation<O, M>,
        caller: &CallerIdentity,
        input: RevokeReleaseInput,
    ) -> Result<String> {
        if !caller.groups.contains(&revocation.admin_group) {
            // As for the other operations, the token's groups are a first gate: a caller
            // outside the admin group learns nothing, not even whether the request exists.
            tracing::warn!(username = %caller.username, "revokeRelease refused: not an admin");
            return Err(EgressError::Forbidden(format!(
                "Only members of {} can revoke a release",
                revocation.admin_group
            )));
        }
        let request = self.existing(&input.egress_request_id).await?;
        let admin = self.reviewer(caller, &request, REVOKED).await?;
        if request.egress_status == EgressStatus::Revoked && admin.is_in(&revocation.admin_group) {
            if let Some(message) = self
                .finish_move(revocation, &request, caller, &admin)
                .await?
            {
                return Ok(message);
            }
        }
        let claim = match plan_revocation(
            &revocation.admin_group,
            &admin,
            &request,
            &input,
            &self.clock.now_iso(),
        ) {
            Ok(claim) => claim,
            Err(err) => {
                return Err(self
                    .refuse(&request, caller, Some(&admin), REVOKED, err)
                    .await)
            }
        };
        let won = match self.store.claim_revocation(&claim).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(EgressError::Conflict(
                "The request is no longer an approved release (it may have just been revoked); \
                 please refresh"
                    .into(),
            )),
            Err(err) => Err(err),
        };
        if let Err(err) = won {
            return Err(self
                .refuse(&request, caller, Some(&admin), REVOKED, err)
                .await);
        }
        tracing::info!(
            egress_request_id = %request.egress_request_id,
            admin = %admin.username,
            "release revoked: downloads refused from now on"
        );
        let moved = self.move_archive(revocation, &request).await;
        let detail = json!({
            "reason": claim.reason,
            "status_before": claim.approved_status,
            "status_after": EgressStatus::Revoked,
            "archive_key": request.archive_key,
            "moved_to": moved.as_ref().ok().and_then(|m| m.as_ref().map(|m| m.to.clone())),
            "archive_moved": moved.is_ok(),
        });
        let detail = match &moved {
            Err(err) => with_error(detail, err),
            Ok(_) => detail,
        };
        if let Err(e) = self
            .record(&request, caller, Some(&admin), REVOKED, "success", detail)
            .await
        {
            // The revocation stands (the item records who, when and why); the log keeps it.
            tracing::error!(error = %e, "revocation made but not appended to the audit trail");
        }
        self.tell(revocation, &request, &claim).await;
        match moved {
            Ok(_) => Ok(REVOKE_SUCCESS_MESSAGE.to_string()),
            Err(err) => {
                tracing::error!(error_type = err.error_type(), error = %err, "the revoked archive could not be moved");
                Err(EgressError::Internal(
                    "The release is revoked and can no longer be downloaded, but its archive \
                     could not be moved out of the approved location; call revokeRelease \
                     again to finish"
                        .into(),
                ))
            }
        }
    }

    /// A revoked request whose archive is still at its key (an earlier move failed): moves it
    /// now. `None` when there is nothing left to move (the revocation is complete).
    async fn finish_move<O: ObjectStore, M: Mailer>(
        &self,
        revocation: &Revocation<O, M>,
        request: &EgressRequest,
        caller: &CallerIdentity,
        admin: &Reviewer,
    ) -> Result<Option<String>> {
        let Some(key) = request.archive_key.as_deref() else {
            return Ok(None);
        };
        let bucket = &self.settings.datalake_bucket;
        if revocation
            .objects
            .head(&ObjectRef::new(bucket, key))
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let moved = self.move_archive(revocation, request).await?;
        let detail = json!({
            "status_after": EgressStatus::Revoked,
            "archive_key": key,
            "moved_to": moved.map(|m| m.to),
            "archive_moved": true,
            "completes": "an earlier revocation whose move failed",
        });
        if let Err(e) = self
            .record(request, caller, Some(admin), REVOKED, "success", detail)
            .await
        {
            tracing::error!(error = %e, "archive move not appended to the audit trail");
        }
        Ok(Some(REVOKE_SUCCESS_MESSAGE.to_string()))
    }

    /// Copies the archive to [`revoked_key`], then deletes every version of the original.
    /// `None` when the request has no archive or it is already gone.
    async fn move_archive<O: ObjectStore, M: Mailer>(
        &self,
        revocation: &Revocation<O, M>,
        request: &EgressRequest,
    ) -> Result<Option<Moved>> {
        let Some(key) = request.archive_key.as_deref() else {
            return Ok(None);
        };
        let bucket = &self.settings.datalake_bucket;
        let objects = &revocation.objects;
        let Some(head) = objects.head(&ObjectRef::new(bucket, key)).await? else {
            return Ok(None);
        };
        // Exactly the version headed: a version written meanwhile is deleted below anyway.
        let source = match &head.version_id {
            Some(v) => ObjectRef::at_version(bucket, key, v),
            None => ObjectRef::new(bucket, key),
        };
        let to = revoked_key(key);
        let destination = Destination::new(bucket, &to, &revocation.datalake_kms_key_arn);
        if head.size > MAX_SINGLE_COPY {
            copy_multipart(
                objects,
                &source,
                &destination,
                head.size,
                COPY_PART_SIZE,
                COPY_CONCURRENCY,
            )
            .await?;
        } else {
            objects.copy(&source, &destination).await?;
        }
        let mut deleted_versions = 0;
        let mut cursor = None;
        loop {
            let page = objects.list_versions(bucket, key, cursor.as_ref()).await?;
            // The listing is by prefix: only this exact key is the archive.
            let mine: Vec<VersionedKey> =
                page.objects.into_iter().filter(|v| v.key == key).collect();
            for batch in mine.chunks(MAX_DELETE_BATCH) {
                objects.delete_versions(bucket, batch).await?;
                deleted_versions += batch.len();
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        tracing::info!(from = key, to = %to, deleted_versions, "revoked archive moved");
        Ok(Some(Moved {
            to,
            deleted_versions,
        }))
    }

    /// Sends the revocation e-mails; best effort (the revocation stands without them).
    async fn tell<O, M: Mailer>(
        &self,
        revocation: &Revocation<O, M>,
        request: &EgressRequest,
        claim: &RevocationClaim,
    ) {
        for email in revocation_emails(request, claim) {
            if let Err(e) = revocation.mailer.send(&email).await {
                tracing::error!(
                    egress_request_id = %request.egress_request_id,
                    error = %e,
                    "revocation e-mail not sent"
                );
            }
        }
    }
}

fn with_error(mut detail: Value, err: &EgressError) -> Value {
    if let Some(map) = detail.as_object_mut() {
        map.insert("error_type".into(), json!(err.error_type()));
        map.insert("message".into(), json!(err.to_string()));
    }
    detail
}

#[cfg(test)]
mod tests;
