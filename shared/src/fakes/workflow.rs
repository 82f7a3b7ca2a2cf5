//! Fakes of Step Functions.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Result;
use crate::ports::{Delivery, StartOutcome, WorkflowCallbacks, WorkflowStarter};

/// Starts executions in memory; a second start with the same name is `AlreadyExists`.
#[derive(Debug, Default)]
pub struct FakeWorkflowStarter {
    /// Execution name → input.
    pub executions: Mutex<HashMap<String, String>>,
}

impl FakeWorkflowStarter {
    /// A copy of the started executions.
    pub fn executions(&self) -> HashMap<String, String> {
        self.executions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl WorkflowStarter for FakeWorkflowStarter {
    async fn start(&self, name: &str, input: &str) -> Result<StartOutcome> {
        let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        if executions.contains_key(name) {
            return Ok(StartOutcome::AlreadyExists);
        }
        executions.insert(name.to_string(), input.to_string());
        Ok(StartOutcome::Started {
            execution_arn: format!("arn:aws:states:eu-west-2:123456789012:execution:egress:{name}"),
        })
    }
}

/// Records task completions; a token can be completed once.
#[derive(Debug, Default)]
pub struct FakeWorkflowCallbacks {
    /// Token → output.
    pub completed: Mutex<HashMap<String, String>>,
}

impl FakeWorkflowCallbacks {
    /// A copy of the completions.
    pub fn completed(&self) -> HashMap<String, String> {
        self.completed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl WorkflowCallbacks for FakeWorkflowCallbacks {
    async fn send_success(&self, task_token: &str, output: &str) -> Result<Delivery> {
        let mut completed = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        if completed.contains_key(task_token) {
            return Ok(Delivery::NoLongerWaiting);
        }
        completed.insert(task_token.to_string(), output.to_string());
        Ok(Delivery::Delivered)
    }
}
