//! In-memory fakes of the ports, for unit tests here and in the function crates
//! (feature `mocks`). They keep what they were given so a test can assert on it.

mod delayed;
mod objects;
mod review;
mod signer;
mod store;
mod sweep;
mod workflow;

pub use delayed::*;
pub use objects::*;
pub use review::*;
pub use signer::*;
pub use store::*;
pub use sweep::*;
pub use workflow::*;
