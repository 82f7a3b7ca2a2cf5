//! Polling with a deadline: the workflow runs asynchronously, so every assertion on its side
//! effects first waits for them.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::Result;

/// How often conditions are re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Polls `check` until it returns `Some`, an error, or `timeout` passes; the timeout error
/// names `what`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!(
                "timed out after {timeout:?} waiting for {what}"
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
