//! The audit-chain verifier (`shared::evidence::chain::verify`): what `requestEvidence`,
//! `make evidence` and an auditor run on a trail read back from the audit table, which anyone
//! with write access could have edited. Any trail, however broken, gives a `ChainReport`:
//! no panic, in bounded time; `valid` exactly when there is no break; an intact chain is
//! valid with its head; an event edited without its hash being recomputed is never valid.

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::json;
use shared::evidence::chain::{
    event_hash, next_link, verify, AuditTrail, ChainHead, ChainLink, StoredEvent, GENESIS,
};
use shared::ports::AuditEvent;

use crate::support::{self, hostile_string, hostile_value};

fn event(i: usize, action: String) -> AuditEvent {
    AuditEvent {
        egress_request_id: "req-1".into(),
        at: format!("2024-05-03T12:00:{:02}.000Z", i % 60),
        actor: "system:start-workflow".into(),
        actor_email: i.is_multiple_of(3).then(|| "iris@example.org".to_string()),
        action,
        outcome: "success".into(),
        detail: json!({"i": i}),
    }
}

/// A trail as written: `n` chained events (and their locks), some unchained ones between.
fn intact(actions: &[String], unchained: &[usize]) -> AuditTrail {
    let mut trail = AuditTrail::default();
    let mut head: Option<ChainHead> = None;
    for (i, a) in actions.iter().enumerate() {
        let e = event(i, a.clone());
        let link = next_link(&e, head.as_ref());
        head = Some(ChainHead {
            seq: link.seq,
            hash: link.hash.clone(),
        });
        trail.locks.push(ChainHead {
            seq: link.seq,
            hash: link.hash.clone(),
        });
        trail.events.push(StoredEvent {
            event_key: format!("{}#{i}", e.at),
            event: e,
            link: Some(link),
        });
        if unchained.contains(&i) {
            trail.events.push(StoredEvent {
                event_key: format!("sfn#{i}"),
                event: event(1000 + i, "submitted".into()),
                link: None,
            });
        }
    }
    trail
}

/// What an attacker (or an accident) does to a stored trail.
#[derive(Debug, Clone)]
enum Tamper {
    /// An event's detail changed, its hash left as it was.
    Edit(usize, serde_json::Value),
    /// An event removed (its lock kept, or removed too).
    Delete(usize, bool),
    /// An event's `seq` set, its hash recomputed over its stored `prev_hash` (or not).
    Relabel(usize, u64, bool),
    /// An event's `prev_hash` set, its hash recomputed (or not).
    Relink(usize, String, bool),
    /// An event's hash replaced.
    Hash(usize, String),
    /// An event copied (a fork).
    Duplicate(usize),
    /// Two events' places swapped.
    Swap(usize, usize),
    /// An event's link removed (it looks written by Step Functions).
    Unlink(usize),
    /// A lock added.
    Lock(u64, String),
    /// A lock removed.
    Unlock(usize),
}

fn seq_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..12,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(1u64 << 40),
        1 => any::<u64>(),
    ]
}

fn hash_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(GENESIS.to_string()),
        2 => "[0-9a-f]{64}",
        1 => hostile_string(),
    ]
}

fn tamper() -> impl Strategy<Value = Tamper> {
    let i = 0usize..10;
    prop_oneof![
        (i.clone(), hostile_value()).prop_map(|(i, v)| Tamper::Edit(i, v)),
        (i.clone(), any::<bool>()).prop_map(|(i, k)| Tamper::Delete(i, k)),
        (i.clone(), seq_value(), any::<bool>()).prop_map(|(i, s, r)| Tamper::Relabel(i, s, r)),
        (i.clone(), hash_value(), any::<bool>()).prop_map(|(i, h, r)| Tamper::Relink(i, h, r)),
        (i.clone(), hash_value()).prop_map(|(i, h)| Tamper::Hash(i, h)),
        i.clone().prop_map(Tamper::Duplicate),
        (i.clone(), i.clone()).prop_map(|(a, b)| Tamper::Swap(a, b)),
        i.clone().prop_map(Tamper::Unlink),
        (seq_value(), hash_value()).prop_map(|(s, h)| Tamper::Lock(s, h)),
        i.prop_map(Tamper::Unlock),
    ]
}

/// Applies `t`; true when the change must show as a break (an edit the hash no longer covers).
fn apply(trail: &mut AuditTrail, t: &Tamper) -> bool {
    let n = trail.events.len();
    if n == 0 {
        return false;
    }
    let rehash = |e: &mut StoredEvent| {
        if let Some(l) = &mut e.link {
            l.hash = event_hash(&e.event, l.seq, &l.prev_hash);
        }
    };
    match t {
        Tamper::Edit(i, v) => {
            let e = &mut trail.events[i % n];
            if e.link.is_some() && e.event.detail != *v {
                e.event.detail = v.clone();
                return true;
            }
        }
        Tamper::Delete(i, keep_lock) => {
            let e = trail.events.remove(i % n);
            if let (Some(l), false) = (&e.link, keep_lock) {
                trail.locks.retain(|k| k.seq != l.seq);
            }
        }
        Tamper::Relabel(i, seq, re) => {
            let e = &mut trail.events[i % n];
            if let Some(l) = &mut e.link {
                l.seq = *seq;
            }
            if *re {
                rehash(e);
            }
        }
        Tamper::Relink(i, h, re) => {
            let e = &mut trail.events[i % n];
            if let Some(l) = &mut e.link {
                l.prev_hash = h.clone();
            }
            if *re {
                rehash(e);
            }
        }
        Tamper::Hash(i, h) => {
            if let Some(l) = &mut trail.events[i % n].link {
                l.hash = h.clone();
            }
        }
        Tamper::Duplicate(i) => {
            let mut copy = trail.events[i % n].clone();
            copy.event_key.push_str("#copy");
            trail.events.push(copy);
        }
        Tamper::Swap(a, b) => trail.events.swap(a % n, b % n),
        Tamper::Unlink(i) => trail.events[i % n].link = None,
        Tamper::Lock(seq, hash) => trail.locks.push(ChainHead {
            seq: *seq,
            hash: hash.clone(),
        }),
        Tamper::Unlock(i) => {
            if !trail.locks.is_empty() {
                let k = i % trail.locks.len();
                trail.locks.remove(k);
            }
        }
    }
    false
}

fn check_report(
    trail: &AuditTrail,
    report: &shared::evidence::chain::ChainReport,
) -> TestCaseResult {
    prop_assert_eq!(report.valid, report.first_break.is_none());
    let chained = trail.events.iter().filter(|e| e.link.is_some()).count() as u64;
    let unchained = trail.events.len() as u64 - chained;
    prop_assert!(report.length <= chained);
    prop_assert_eq!(report.unchained.len() as u64, unchained);
    if let Some(b) = &report.first_break {
        prop_assert!(
            ["EditedEvent", "DeletedEvent", "ReorderedEvents", "Forked"].contains(&b.name())
        );
        prop_assert!(b.to_string().starts_with(b.name()));
    }
    if report.valid {
        prop_assert_eq!(report.length, chained);
        // A valid chain is 1..=n, each linked to the one before.
        let mut links: Vec<&ChainLink> = trail
            .events
            .iter()
            .filter_map(|e| e.link.as_ref())
            .collect();
        links.sort_by_key(|l| l.seq);
        for (i, l) in links.iter().enumerate() {
            prop_assert_eq!(l.seq, i as u64 + 1);
        }
        prop_assert_eq!(
            report.head.as_ref().map(|h| h.seq),
            links.last().map(|l| l.seq)
        );
    }
    Ok(())
}

#[test]
fn when_an_audit_trail_is_tampered_with_then_the_verifier_reports_and_never_panics() {
    support::run(
        "audit_chain",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (
            proptest::collection::vec(
                prop_oneof![4 => "[a-z_]{1,12}", 1 => hostile_string()],
                0..10,
            ),
            proptest::collection::vec(0usize..10, 0..3),
            proptest::collection::vec(tamper(), 0..4),
        ),
        |(actions, unchained, tampers)| {
            let mut trail = intact(&actions, &unchained);
            let clean = verify(&trail);
            prop_assert!(clean.valid, "an intact chain: {:?}", clean.first_break);
            prop_assert_eq!(clean.length, actions.len() as u64);
            let mut must_break = false;
            for t in &tampers {
                must_break |= apply(&mut trail, t);
            }
            let started = std::time::Instant::now();
            let report = verify(&trail);
            if started.elapsed().as_secs() >= 1 {
                support::tally("slow_case_over_1s");
            }
            check_report(&trail, &report)?;
            // Only edits the hash no longer covers are certain to show (a later tamper may
            // have recomputed that hash, or unlinked or deleted the event).
            let recomputed = tampers.iter().any(|t| {
                matches!(
                    t,
                    Tamper::Relabel(..)
                        | Tamper::Relink(..)
                        | Tamper::Hash(..)
                        | Tamper::Delete(..)
                        | Tamper::Unlink(..)
                )
            });
            if must_break && !recomputed {
                prop_assert!(!report.valid, "an edited event went unnoticed");
            }
            support::tally(match &report.first_break {
                None if tampers.is_empty() => "intact_valid",
                None => "tampered_still_valid",
                Some(b) => b.name(),
            });
            Ok(())
        },
    );
}

#[test]
fn when_an_audit_trail_is_arbitrary_json_then_it_is_refused_or_verified() {
    support::run(
        "audit_chain_json",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (
            proptest::collection::vec(
                (
                    prop_oneof![3 => hostile_value(), 1 => Just(json!(null))],
                    seq_value(),
                    hash_value(),
                    hash_value(),
                ),
                0..6,
            ),
            proptest::collection::vec((seq_value(), hash_value()), 0..4),
        ),
        |(events, locks)| {
            let events: Vec<serde_json::Value> = events
                .into_iter()
                .enumerate()
                .map(|(i, (detail, seq, prev, hash))| {
                    json!({
                        "event_key": format!("k{i}"), "egress_request_id": "req-1",
                        "at": "2024-05-03T12:00:00.000Z", "actor": "a", "action": "x",
                        "outcome": "success", "detail": detail,
                        "link": {"seq": seq, "prev_hash": prev, "hash": hash},
                    })
                })
                .collect();
            let locks: Vec<serde_json::Value> = locks
                .into_iter()
                .map(|(seq, hash)| json!({"seq": seq, "hash": hash}))
                .collect();
            let doc = json!({"events": events, "locks": locks});
            match serde_json::from_value::<AuditTrail>(doc) {
                Ok(trail) => {
                    let report = verify(&trail);
                    check_report(&trail, &report)?;
                    support::tally(if report.valid { "valid" } else { "broken" });
                }
                Err(_) => support::tally("not_a_trail"),
            }
            Ok(())
        },
    );
}
