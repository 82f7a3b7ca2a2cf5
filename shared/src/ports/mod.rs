//! Capability traits: everything the domain needs from the outside world.
//!
//! Production adapters in [`crate::adapters`] wrap the AWS SDK clients; tests use the
//! in-memory fakes of [`crate::fakes`] (feature `mocks`) or the real clients with
//! `aws-smithy-mocks`.

mod audit;
mod clock;
mod mail;
mod objects;
mod requests;
mod review;
mod signing;
mod sweep;
mod workflow;

pub use audit::*;
pub use clock::*;
pub use mail::*;
#[allow(unused_imports)]
pub use objects::*;
pub use requests::*;
pub use review::*;
pub use signing::*;
pub use sweep::*;
pub use workflow::*;
