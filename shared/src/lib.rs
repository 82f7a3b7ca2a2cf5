//! Shared library of the TRE egress approval service.
//!
//! Everything the Lambda functions have in common lives here, so the handlers stay thin:
//! - [`model`]: what SWB sends, what we store, each workflow step's input and output;
//! - [`domain`]: the rules, as plain functions without AWS;
//! - [`checks`]: the automated output checks' rule engine (plain Rust, shared with the CLI);
//! - [`ports`]: capability traits the domain needs (`RequestStore`, `ObjectStore`...);
//! - [`adapters`]: the AWS SDK implementations of those ports;
//! - [`error`]: the typed error with its stable Lambda `errorType` names;
//! - [`config`], [`telemetry`], [`aws`]: init-time plumbing shared by every `main`;
//! - [`metrics`]: CloudWatch metrics in Embedded Metric Format, one JSON line on stdout each.

#![deny(missing_docs)]

pub mod adapters;
pub mod aws;
pub mod checks;
pub mod config;
pub mod domain;
pub mod error;
pub mod evidence;
pub mod metrics;
pub mod model;
pub mod ports;
pub mod services;
pub mod telemetry;
pub mod zipstream;

#[cfg(any(test, feature = "mocks"))]
pub mod fakes;
#[cfg(any(test, feature = "mocks"))]
pub mod testdata;

pub use error::{EgressError, Result};
