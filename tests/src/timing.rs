//! Per-test timings, collected by `make test-e2e` into a summary.

use std::time::Instant;

use crate::stack::state_dir;

/// Measures one test; [`Timer::finish`] records `<name>: <seconds>s` under
/// `.local-stack/e2e-timings/`.
#[derive(Debug)]
pub struct Timer {
    name: String,
    started: Instant,
}

impl Timer {
    /// Starts measuring `name`.
    pub fn start(name: &str) -> Self {
        Self {
            name: name.to_string(),
            started: Instant::now(),
        }
    }

    /// Seconds since the start.
    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Records the time (best effort: timing never fails a test) and returns it.
    pub fn finish(self) -> f64 {
        let seconds = self.elapsed_seconds();
        let dir = state_dir().join("e2e-timings");
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(
                dir.join(format!("{}.txt", self.name)),
                format!("  {:<48} {seconds:6.2}s\n", self.name),
            );
        }
        seconds
    }
}
