//! End-to-end harness of the egress workflow, shared by the e2e tests and the demo.
//!
//! Everything runs against the local stack (`make stack-up`, README.md, "Running it locally"): moto for
//! AWS, the real function binaries under `cargo lambda watch`, the real state machine.
//! - [`stack`]: the running stack's outputs and SDK clients pointed at it (and only at it);
//! - [`swb`]: the SWB simulator (`local/egress_local/swb.py`): submissions as SWB makes them;
//! - [`fixture`]: what every GraphQL e2e test starts from (stack, API, a submission);
//! - [`driver`]: reviewer actions (decide, download), always through the GraphQL API;
//! - [`inspect`]: reading side effects: the request item, SWB status, staging, the archive,
//!   e-mails, topic messages, the execution and its history;
//! - [`verify`]: the checks the tests and the demo share (staging, the archive);
//! - [`wait`] and [`timing`]: polling with deadlines, per-test timings;
//! - [`bad_inputs`]: the catalogue of bad inputs (`events/bad/`) and the world each replays in;
//! - [`promises`]: the promises a long suite (chaos, load) checks after its run (DESIGN.md §8).

pub mod bad_inputs;
pub mod driver;
pub mod fixture;
pub mod graphql;
pub mod inspect;
pub mod promises;
pub mod stack;
pub mod swb;
pub mod timing;
pub mod verify;
pub mod wait;

/// The harness's result and the `.context()` that says what was being attempted: `anyhow`'s.
pub use anyhow::{Context, Result};

/// An error and its sources on one line: the AWS SDK's errors only say "service error" at
/// the top and keep the service's code and message in their sources.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
