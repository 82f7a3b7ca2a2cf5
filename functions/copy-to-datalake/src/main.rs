//! `copy-to-datalake`: invoked by the state machine once a request is approved; streams the
//! staged files into one zip archive in the project's datalake bucket (verifying each file's
//! SHA-256 on the way), then removes the staged copies.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::dynamodb::{DynamoDbAuditLog, DynamoDbRequestStore};
use shared::adapters::s3::S3ObjectStore;
use shared::config::ProcessEnv;
use shared::ports::SystemClock;

/// The largest allocation glibc serves from its arenas; larger ones are mapped on their own
/// and returned to the system when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Pins glibc's mmap threshold. Left to itself, glibc raises the threshold to the size of
/// each large buffer freed (up to 32 MiB) and then serves buffers of that size from arenas
/// it seldom gives back, so the HTTP read buffers and part buffers of a long archive pile up
/// in the resident set. Pinned, they are mapped and unmapped on their own: measured with
/// `make bench-e2e-archive`, the process's peak RSS for a 1 GiB archive fell from 65.5 to
/// 56.1 MiB. True when glibc took the setting.
fn pin_mmap_threshold() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; it is called first thing in
        // main, before any other thread exists.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

fn main() -> Result<(), Error> {
    let pinned = pin_mmap_threshold();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_function(pinned))
}

async fn run_function(pinned: bool) -> Result<(), Error> {
    shared::telemetry::init();
    if !pinned {
        tracing::warn!("the allocator's mmap threshold could not be pinned; memory may grow");
    }
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "copy-to-datalake cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let mut settings = config.archive;
    settings.release_signer = config.release_signing_key_id.map(|key| {
        shared::evidence::release::SignerHandle::new(
            shared::adapters::kms::KmsReleaseSigner::from_config(&sdk, key),
        )
    });
    let step = shared::services::archive::ArchiveStep {
        objects: S3ObjectStore::new(shared::aws::s3_client(&sdk)),
        requests: DynamoDbRequestStore::new(dynamodb.clone(), config.requests_table),
        audit: DynamoDbAuditLog::new(dynamodb, config.audit_table),
        clock: SystemClock,
        settings,
    };
    run(service_fn(|event| handler::handle(&step, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn when_the_process_starts_then_glibc_takes_the_pinned_mmap_threshold() {
        assert!(pin_mmap_threshold());
    }
}
