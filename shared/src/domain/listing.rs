//! `listRequests` at any number of stored requests: what one call returns, in which order,
//! and how much of it.
//!
//! Lambda refuses a synchronous response above 6 MB, and the web app's list had no bound: at
//! about 5,500 requests with every field it failed. So one call returns one page: the
//! requests awaiting the caller's review groups first (each stage's own status, read from
//! the `by-status` index), then every request by submission time, newest first (requests
//! already listed as awaiting are not repeated), at most `limit` of them
//! ([`DEFAULT_LIST_LIMIT`] when the client gives none, as the TREEHOOSE web app does) and
//! at most [`MAX_LIST_BYTES`] of JSON, with only the fields the query selected.
//!
//! The schema's result stays `[Request]` for the web app, so the page carries no token of
//! its own: a client that pages passes the `egress_request_id` of the last request it got as
//! `nextToken`, and stops at an empty page.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::review::{listed_stage, ReviewPolicy};
use crate::error::{EgressError, Result};
use crate::model::{EgressRequest, RequestView, ReviewStage};
use crate::ports::ListIndex;

/// Requests per page when the query gives no `limit`.
pub const DEFAULT_LIST_LIMIT: u32 = 200;

/// The largest `limit` accepted.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The most JSON one page returns: Lambda's synchronous response limit is 6 MB, and the
/// resolver's envelope and AppSync's own response need room.
pub const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;

/// `listRequests(limit:, nextToken:)`, both optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArguments {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default, rename = "nextToken")]
    next_token: Option<String>,
}

/// The page a call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListArguments {
    /// Requests at most (1..=[`MAX_LIST_LIMIT`]).
    pub limit: u32,
    /// The id of the last request of the previous page.
    pub next_token: Option<String>,
}

/// The arguments of a `listRequests` call (`{}` or null when the client sends none).
pub fn list_arguments(value: &Value) -> Result<ListArguments> {
    let raw: RawArguments = match value {
        Value::Null => RawArguments::default(),
        other => serde_json::from_value(other.clone()).map_err(|e| {
            EgressError::validation(format!("invalid arguments for listRequests: {e}"))
        })?,
    };
    let limit = match raw.limit {
        None => DEFAULT_LIST_LIMIT,
        Some(n) if (1..=i64::from(MAX_LIST_LIMIT)).contains(&n) => n as u32,
        Some(n) => {
            return Err(EgressError::validation(format!(
                "listRequests limit must be between 1 and {MAX_LIST_LIMIT}, got {n}"
            )))
        }
    };
    let next_token = raw.next_token.filter(|t| !t.is_empty());
    if let Some(token) = &next_token {
        if token.len() > 128 || token.chars().any(char::is_control) {
            return Err(EgressError::validation(
                "listRequests nextToken is not the id of a listed request",
            ));
        }
    }
    Ok(ListArguments { limit, next_token })
}

/// One part of the list, in the order a page walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Requests whose `stage` waits for a decision (the caller is in that stage's group).
    Awaiting(ReviewStage),
    /// Every request, newest submission first.
    Recent,
}

/// The review stages whose group the caller is in.
pub fn caller_stages(policy: &ReviewPolicy, groups: &[String]) -> Vec<ReviewStage> {
    [ReviewStage::Ig, ReviewStage::Rit]
        .into_iter()
        .filter(|stage| groups.iter().any(|g| g == policy.group_for(*stage)))
        .collect()
}

/// The phases of a caller's list: each stage they review, then everything.
pub fn phases(stages: &[ReviewStage]) -> Vec<Phase> {
    stages
        .iter()
        .map(|s| Phase::Awaiting(*s))
        .chain([Phase::Recent])
        .collect()
}

/// The index a phase reads. `since` (ISO-8601) bounds the recent requests by submission
/// time (`LIST_MAX_AGE_DAYS`); requests awaiting a review are listed whatever their age.
pub fn index_of(phase: Phase, since: Option<&str>) -> ListIndex {
    match phase {
        Phase::Awaiting(stage) => {
            ListIndex::Status(crate::domain::transitions::status_awaiting(stage))
        }
        Phase::Recent => ListIndex::Submitted {
            since: since.map(str::to_string),
        },
    }
}

/// True when `request`, read in `phase`, belongs on the page: in an awaiting phase, it
/// waits for that stage; in the recent phase, it was not already listed as awaiting one of
/// the caller's `stages`.
pub fn accepts(phase: Phase, request: &EgressRequest, stages: &[ReviewStage]) -> bool {
    let waiting = listed_stage(request);
    match phase {
        Phase::Awaiting(stage) => waiting == Some(stage),
        Phase::Recent => waiting.is_none_or(|s| !stages.contains(&s)),
    }
}

/// The phase (index into `phases`) a page that continues after `request` resumes in.
pub fn phase_of(phases: &[Phase], request: &EgressRequest, stages: &[ReviewStage]) -> usize {
    phases
        .iter()
        .position(|p| matches!(p, Phase::Awaiting(_)) && accepts(*p, request, stages))
        .unwrap_or(phases.len().saturating_sub(1))
}

/// `view` with only the fields the query selected (AppSync's `selectionSetList`); every
/// field when the resolver passed no selection.
pub fn project(view: &RequestView, selection: Option<&[String]>) -> Result<Value> {
    let value = serde_json::to_value(view)
        .map_err(|e| EgressError::Internal(format!("a request cannot be serialised: {e}")))?;
    let (Some(selection), Value::Object(fields)) = (selection, &value) else {
        return Ok(value);
    };
    let projected: Map<String, Value> = fields
        .iter()
        .filter(|(name, _)| selection.iter().any(|s| s == *name))
        .map(|(name, v)| (name.clone(), v.clone()))
        .collect();
    Ok(Value::Object(projected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::review::request_view;
    use crate::model::{ApprovalMode, EgressStatus};
    use crate::testdata::request;
    use serde_json::json;

    fn policy() -> ReviewPolicy {
        ReviewPolicy {
            ig_group: "IG".into(),
            rit_group: "RIT".into(),
            download_groups: vec!["IG".into(), "RIT".into(), "Auditors".into()],
            max_downloads: 3,
        }
    }

    fn parked(stage: ReviewStage) -> EgressRequest {
        let mut r = request(
            "req-1",
            match stage {
                ReviewStage::Ig => EgressStatus::Processing,
                ReviewStage::Rit => EgressStatus::IgApproved,
            },
        );
        r.approval_mode = ApprovalMode::Dual;
        r.review_stage = Some(stage);
        r.review_handle = Some("h".into());
        r
    }

    #[test]
    fn when_no_arguments_are_given_then_the_default_page_is_asked() {
        for args in [json!({}), Value::Null] {
            assert_eq!(
                list_arguments(&args).unwrap(),
                ListArguments {
                    limit: DEFAULT_LIST_LIMIT,
                    next_token: None
                }
            );
        }
        let args = list_arguments(&json!({"limit": 5, "nextToken": "req-9"})).unwrap();
        assert_eq!((args.limit, args.next_token.as_deref()), (5, Some("req-9")));
    }

    #[test]
    fn when_the_limit_is_out_of_range_or_an_argument_is_unknown_then_it_is_refused() {
        for args in [
            json!({"limit": 0}),
            json!({"limit": 1001}),
            json!({"limit": "ten"}),
            json!({"offset": 3}),
            json!({"nextToken": "a\nb"}),
        ] {
            let err = list_arguments(&args).unwrap_err();
            assert_eq!(err.error_type(), "ValidationError", "{args}");
        }
    }

    #[test]
    fn when_a_caller_reviews_both_stages_then_both_awaiting_phases_come_before_the_recent_one() {
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stages = caller_stages(&policy(), &groups(&["RIT", "IG"]));
        assert_eq!(
            phases(&stages),
            vec![
                Phase::Awaiting(ReviewStage::Ig),
                Phase::Awaiting(ReviewStage::Rit),
                Phase::Recent
            ]
        );
        assert_eq!(
            phases(&caller_stages(&policy(), &groups(&["Auditors"]))),
            vec![Phase::Recent]
        );
        assert_eq!(
            index_of(Phase::Awaiting(ReviewStage::Rit), None),
            ListIndex::Status(EgressStatus::IgApproved)
        );
    }

    #[test]
    fn when_a_request_awaits_the_callers_stage_then_it_is_listed_once_in_that_phase() {
        let ig = [ReviewStage::Ig];
        let waiting = parked(ReviewStage::Ig);
        assert!(accepts(Phase::Awaiting(ReviewStage::Ig), &waiting, &ig));
        assert!(!accepts(Phase::Recent, &waiting, &ig), "not repeated");
        assert!(accepts(Phase::Recent, &waiting, &[ReviewStage::Rit]));
        let staging = request("req-2", EgressStatus::Processing);
        assert!(!accepts(Phase::Awaiting(ReviewStage::Ig), &staging, &ig));
        assert!(accepts(Phase::Recent, &staging, &ig));
        let all = phases(&ig);
        assert_eq!(phase_of(&all, &waiting, &ig), 0);
        assert_eq!(phase_of(&all, &staging, &ig), 1);
    }

    #[test]
    fn when_fields_are_selected_then_only_those_are_returned() {
        let view = request_view(&parked(ReviewStage::Ig));
        let selection = ["egress_request_id".to_string(), "egress_status".to_string()];
        assert_eq!(
            project(&view, Some(&selection)).unwrap(),
            json!({"egress_request_id": "req-1", "egress_status": "PROCESSING"})
        );
        let all = project(&view, None).unwrap();
        assert_eq!(all, serde_json::to_value(&view).unwrap());
    }
}
