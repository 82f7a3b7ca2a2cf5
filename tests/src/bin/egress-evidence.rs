//! `make evidence ID=<request>`: a request's evidence pack as one JSON file for an auditor,
//! read from the running local stack: the request, the signed release record and its
//! signature (beside the archive in the datalake), the audit trail with its chain
//! verification, and the downloads (who, when).
//!
//! Usage: `egress-evidence <egress_request_id> [<out.json>]` (default
//! `evidence-<id>.json`). Exits 1 when the request is unknown, 2 when its chain is broken
//! (the pack is still written, with the break named).

use std::process::ExitCode;

use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::{Context, Result};
use serde_json::json;
use shared::adapters::dynamodb::DynamoDbAuditLog;
use shared::evidence::chain;
use shared::evidence::release::{beside, signature_name};
use shared::ports::AuditLog;

async fn pack(stack: &Stack, id: &str) -> Result<Option<(serde_json::Value, bool)>> {
    let Some(request) = inspect::request(stack, id).await? else {
        return Ok(None);
    };
    let audit = DynamoDbAuditLog::new(stack.dynamodb.clone(), stack.outputs.table("AuditTable")?);
    let trail = audit.trail(id).await?;
    let verification = chain::verify(&trail);
    let bucket = stack.outputs.bucket("DatalakeBucket")?;
    let (mut manifest, mut signature) = (None, None);
    if let Some(archive_key) = &request.archive_key {
        let name = shared::domain::keys::archive_manifest_name(id);
        for (slot, file) in [
            (&mut manifest, name.clone()),
            (&mut signature, signature_name(&name)),
        ] {
            if let Some(object) =
                inspect::object(stack, bucket, &beside(archive_key, &file), None).await?
            {
                *slot = serde_json::from_slice::<serde_json::Value>(&object.body).ok();
            }
        }
    }
    let downloads: Vec<serde_json::Value> = trail
        .events
        .iter()
        .filter(|e| e.event.action == "download")
        .map(|e| json!({ "who": e.event.actor, "email": e.event.actor_email, "when": e.event.at, "outcome": e.event.outcome }))
        .collect();
    let valid = verification.valid;
    let mut request_json = serde_json::to_value(&request)?;
    if let Some(map) = request_json.as_object_mut() {
        // Server-side secrets never leave the backend.
        map.remove("sfn_task_token");
        map.remove("review_handle");
    }
    Ok(Some((
        json!({
            "format": "egress-evidence/v1",
            "egress_request_id": id,
            "request": request_json,
            "manifest": manifest,
            "signature": signature,
            // The checks as the signed record states them, else the summary on the request.
            "checks": manifest
                .as_ref()
                .and_then(|m| m.get("checks").filter(|c| !c.is_null()).cloned())
                .unwrap_or_else(|| json!({
                    "verdict": request.checks_verdict,
                    "summary": request.checks_summary,
                    "policy_version": request.checks_policy_version,
                    "mode": request.checks_mode,
                })),
            "audit_chain": { "verification": verification, "trail": trail },
            "downloads": downloads,
        }),
        valid,
    )))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(id) = args.first() else {
        eprintln!("usage: egress-evidence <egress_request_id> [<out.json>]");
        return ExitCode::from(2);
    };
    let out = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| format!("evidence-{id}.json"));
    let result = async {
        let stack = Stack::connect()
            .await
            .context("the local stack (make stack-up)")?;
        pack(&stack, id).await
    }
    .await;
    match result {
        Ok(Some((pack, valid))) => {
            let text = serde_json::to_string_pretty(&pack).unwrap_or_default();
            if let Err(e) = std::fs::write(&out, text) {
                eprintln!("egress-evidence: cannot write {out}: {e}");
                return ExitCode::from(1);
            }
            println!(
                "evidence of {id} written to {out} (audit chain {})",
                if valid { "valid" } else { "BROKEN" }
            );
            if valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Ok(None) => {
            eprintln!("egress-evidence: no egress request {id}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("egress-evidence: {e:#}");
            ExitCode::from(1)
        }
    }
}
