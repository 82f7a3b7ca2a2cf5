//! The data of the service: what SWB sends, what we store, what each step passes on.

mod api;
mod checks;
mod request;
mod steps;
mod swb;
mod sweep;

pub use api::*;
pub use checks::*;
pub use request::*;
pub use steps::*;
pub use swb::*;
pub use sweep::*;
