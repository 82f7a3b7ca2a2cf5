//! Reading function configuration from the environment, once, at init.
//!
//! Every accessor names the variable in its error, so a misconfigured deployment fails its
//! first cold start with a message an admin can act on.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::str::FromStr;

use crate::error::{EgressError, Result};

/// A source of configuration values; the process environment in production, a map in tests.
pub trait Env {
    /// The raw value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// An [`Env`] that remembers every name it was asked for, so a function's tests can check
/// that its `from_env` reads exactly the variables its `VARIABLES` declares (the list the
/// template gate compares with the template).
#[derive(Debug)]
pub struct Recorder<E> {
    env: E,
    asked: RefCell<BTreeSet<String>>,
}

impl<E> Recorder<E> {
    /// Records the reads of `env`.
    pub fn new(env: E) -> Self {
        Self {
            env,
            asked: RefCell::default(),
        }
    }

    /// The names asked for so far, sorted.
    pub fn asked(&self) -> Vec<String> {
        self.asked.borrow().iter().cloned().collect()
    }
}

impl<E: Env> Env for Recorder<E> {
    fn var(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_string());
        self.env.var(name)
    }
}

/// A required, non-empty variable.
pub fn required(env: &impl Env, name: &str) -> Result<String> {
    match env.var(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(EgressError::Config(format!(
            "environment variable {name} is set but empty"
        ))),
        None => Err(EgressError::Config(format!(
            "environment variable {name} is required but not set"
        ))),
    }
}

/// An optional variable; empty counts as unset.
pub fn optional(env: &impl Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A required variable parsed into `T`.
pub fn parsed<T>(env: &impl Env, name: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let raw = required(env, name)?;
    raw.parse::<T>().map_err(|e| {
        EgressError::Config(format!(
            "environment variable {name} has an invalid value {raw:?}: {e}"
        ))
    })
}

/// An optional variable parsed into `T`, with a default when unset.
pub fn parsed_or<T>(env: &impl Env, name: &str, default: T) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(env, name) {
        None => Ok(default),
        Some(_) => parsed(env, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_required_variable_is_missing_then_the_error_names_it() {
        let env = [("OTHER", "x")];
        let err = required(&env, "STAGING_BUCKET").unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
        assert!(err.to_string().contains("STAGING_BUCKET"), "{err}");
    }

    #[test]
    fn when_a_required_variable_is_blank_then_it_is_rejected() {
        let env = [("STAGING_BUCKET", "  ")];
        let err = required(&env, "STAGING_BUCKET").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn when_a_number_is_malformed_then_the_error_names_variable_and_value() {
        let env = [("MAX_DOWNLOADS", "three")];
        let err = parsed::<u32>(&env, "MAX_DOWNLOADS").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("MAX_DOWNLOADS") && text.contains("three"),
            "{text}"
        );
    }

    #[test]
    fn when_variables_are_read_through_a_recorder_then_it_lists_each_once_sorted() {
        let env = Recorder::new([("B", "1")]);
        assert_eq!(optional(&env, "B").as_deref(), Some("1"));
        assert!(required(&env, "A").is_err());
        assert_eq!(optional(&env, "B").as_deref(), Some("1"));
        assert_eq!(env.asked(), ["A", "B"]);
    }

    #[test]
    fn when_an_optional_number_is_unset_then_the_default_applies() {
        let env = [("X", "1")];
        assert_eq!(parsed_or::<u32>(&env, "MAX_DOWNLOADS", 3).unwrap(), 3);
        let env = [("MAX_DOWNLOADS", "5")];
        assert_eq!(parsed_or::<u32>(&env, "MAX_DOWNLOADS", 3).unwrap(), 5);
    }
}
