//! The hash-chained audit trail: how an event is hashed, and the verifier that recomputes a
//! request's chain and names the first broken link.
//!
//! # Canonical serialisation (format `egress-audit-chain/v1`)
//!
//! An event's hash is the lower-case hex SHA-256 of the bytes
//! `egress-audit-chain/v1\n` followed by the canonical JSON of the object
//! `{egress_request_id, seq, prev_hash, at, actor, actor_email?, action, outcome, detail}`:
//! object keys sorted by their UTF-8 bytes at every depth, no whitespace, strings escaped as
//! JSON requires (serde_json's escaping), integers in decimal, `actor_email` left out when
//! absent. `prev_hash` is the hash of the event with `seq - 1`, or 64 zeros for `seq = 1`.
//! The event's own `hash` and its storage key are not hashed. Anyone can recompute a chain
//! from an export of the audit table with this definition (`make evidence` exports one).
//!
//! # What makes it tamper-evident
//!
//! Each event is written together with a *chain lock* item keyed by `(request, seq)` under
//! the condition that neither exists, in one DynamoDB transaction: two writers can never
//! both append `seq = n` (no fork), and a writer that loses re-reads the head and retries.
//! No role may update or delete audit items. An edit shows as a hash that no longer matches
//! (or a link that no longer points at its predecessor), a deletion as a gap in `seq` or a
//! lock without its event, a reordering as an event whose hash matches another position.
//! The head at archive time is also inside the signed release manifest.
//!
//! Events that Step Functions writes itself (submission, expiry, workflow failure, through
//! its direct DynamoDB integration, which cannot compute a hash) carry no link: the verifier
//! lists them as `unchained` rather than silently trusting or rejecting them.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ports::AuditEvent;

/// Domain separation of the hashed bytes, so a chain hash can never be confused with
/// another SHA-256 of the same JSON.
pub const CHAIN_FORMAT: &str = "egress-audit-chain/v1";

/// `prev_hash` of the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where an event sits in its request's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// 1, 2, 3... per request.
    pub seq: u64,
    /// Hash of the event with `seq - 1` ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// This event's hash (see the module doc).
    pub hash: String,
}

/// The last link of a chain: what a new event links to, and what the manifest quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Sequence number of the last event.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// One audit event as stored: the event, its storage key and, when chained, its link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The table's sort key (`<at>#<uuid>`).
    pub event_key: String,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Its link; `None` for events Step Functions wrote itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<ChainLink>,
}

/// A request's whole trail as read back: events in key order, and the chain locks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTrail {
    /// Every event of the request.
    pub events: Vec<StoredEvent>,
    /// The chain locks (`seq` and the hash each lock recorded), in `seq` order.
    pub locks: Vec<ChainHead>,
}

/// The first broken link of a chain, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "PascalCase")]
pub enum ChainBreak {
    /// The event at `seq` is not what was hashed when it was written.
    #[error("EditedEvent: the audit event at seq {seq} was changed after it was written")]
    EditedEvent {
        /// The edited event.
        seq: u64,
    },
    /// The event at `seq` is missing.
    #[error("DeletedEvent: the audit event at seq {seq} was deleted")]
    DeletedEvent {
        /// The missing event.
        seq: u64,
    },
    /// The event found at `seq` was written at `written_at`.
    #[error("ReorderedEvents: the audit event found at seq {seq} was written at seq {written_at}")]
    ReorderedEvents {
        /// Where it is now.
        seq: u64,
        /// Where it was written.
        written_at: u64,
    },
    /// Two events claim seq `seq` (or the same predecessor).
    #[error("Forked: two audit events claim seq {seq}")]
    Forked {
        /// The contested position.
        seq: u64,
    },
}

impl ChainBreak {
    /// The stable name of the break.
    pub fn name(&self) -> &'static str {
        match self {
            ChainBreak::EditedEvent { .. } => "EditedEvent",
            ChainBreak::DeletedEvent { .. } => "DeletedEvent",
            ChainBreak::ReorderedEvents { .. } => "ReorderedEvents",
            ChainBreak::Forked { .. } => "Forked",
        }
    }
}

/// What the verifier found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// No broken link.
    pub valid: bool,
    /// Chained events.
    pub length: u64,
    /// The last link (when valid, the head every future event links to).
    pub head: Option<ChainHead>,
    /// Keys of events without a link (written by Step Functions itself).
    pub unchained: Vec<String>,
    /// The first broken link, if any.
    pub first_break: Option<ChainBreak>,
}

/// The hash of `event` at `seq` after `prev_hash` (see the module doc).
pub fn event_hash(event: &AuditEvent, seq: u64, prev_hash: &str) -> String {
    let mut object = BTreeMap::new();
    object.insert(
        "egress_request_id",
        Value::from(event.egress_request_id.clone()),
    );
    object.insert("seq", Value::from(seq));
    object.insert("prev_hash", Value::from(prev_hash));
    object.insert("at", Value::from(event.at.clone()));
    object.insert("actor", Value::from(event.actor.clone()));
    if let Some(email) = &event.actor_email {
        object.insert("actor_email", Value::from(email.clone()));
    }
    object.insert("action", Value::from(event.action.clone()));
    object.insert("outcome", Value::from(event.outcome.clone()));
    object.insert("detail", event.detail.clone());
    let mut text = String::new();
    canonical_object(&mut text, object.iter().map(|(k, v)| (*k, v)));
    let mut hasher = Sha256::new();
    hasher.update(CHAIN_FORMAT.as_bytes());
    hasher.update(b"\n");
    hasher.update(text.as_bytes());
    hex::encode(hasher.finalize())
}

/// The link `event` gets after `head` (the first link when `None`).
pub fn next_link(event: &AuditEvent, head: Option<&ChainHead>) -> ChainLink {
    let (seq, prev_hash) = match head {
        Some(h) => (h.seq.saturating_add(1), h.hash.clone()),
        None => (1, GENESIS.to_string()),
    };
    let hash = event_hash(event, seq, &prev_hash);
    ChainLink {
        seq,
        prev_hash,
        hash,
    }
}

/// Canonical JSON of `value` (sorted keys, no whitespace).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    canonical(&mut out, value);
    out
}

fn canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&str, &Value> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            canonical_object(out, sorted.into_iter());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(out, item);
            }
            out.push(']');
        }
        // Scalars: serde_json's own rendering (strings escaped, integers in decimal).
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn canonical_object<'a>(out: &mut String, entries: impl Iterator<Item = (&'a str, &'a Value)>) {
    out.push('{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", Value::from(key));
        out.push(':');
        canonical(out, value);
    }
    out.push('}');
}

/// Recomputes `trail`'s chain and reports the first broken link.
pub fn verify(trail: &AuditTrail) -> ChainReport {
    let unchained: Vec<String> = trail
        .events
        .iter()
        .filter(|e| e.link.is_none())
        .map(|e| e.event_key.clone())
        .collect();
    let mut chained: Vec<(&AuditEvent, &ChainLink)> = trail
        .events
        .iter()
        .filter_map(|e| e.link.as_ref().map(|l| (&e.event, l)))
        .collect();
    chained.sort_by_key(|(_, l)| l.seq);
    let report =
        |first_break: Option<ChainBreak>, length: u64, head: Option<ChainHead>| ChainReport {
            valid: first_break.is_none(),
            length,
            head,
            unchained: unchained.clone(),
            first_break,
        };
    let stored_hashes: HashSet<&str> = chained.iter().map(|(_, l)| l.hash.as_str()).collect();
    let max_seq = chained.last().map(|(_, l)| l.seq).unwrap_or(0);
    let mut head: Option<ChainHead> = None;
    for (i, (event, link)) in chained.iter().enumerate() {
        let expected = i as u64 + 1;
        if i > 0 && chained[i - 1].1.seq == link.seq {
            return report(Some(ChainBreak::Forked { seq: link.seq }), i as u64, head);
        }
        if link.seq == 0 {
            // Chains start at 1: a seq-0 link was never written, whatever its hash says.
            return report(Some(ChainBreak::EditedEvent { seq: 0 }), i as u64, head);
        }
        if link.seq > expected {
            return report(
                Some(ChainBreak::DeletedEvent { seq: expected }),
                i as u64,
                head,
            );
        }
        if event_hash(event, link.seq, &link.prev_hash) != link.hash {
            // Relabelled rather than edited: its hash holds at another position.
            // Positions ever written are bounded by the events and locks present (a stored
            // seq can be anything, up to u64::MAX: it must not set the search's length).
            let positions = max_seq
                .max(chained.len() as u64)
                .min((chained.len() + trail.locks.len()) as u64);
            let written_at = (1..=positions)
                .find(|&s| s != link.seq && event_hash(event, s, &link.prev_hash) == link.hash);
            let broken = match written_at {
                Some(written_at) => ChainBreak::ReorderedEvents {
                    seq: link.seq,
                    written_at,
                },
                None => ChainBreak::EditedEvent { seq: link.seq },
            };
            return report(Some(broken), i as u64, head);
        }
        let expected_prev = head.as_ref().map(|h| h.hash.as_str()).unwrap_or(GENESIS);
        if link.prev_hash != expected_prev {
            let broken = if chained
                .iter()
                .any(|(_, other)| other.seq != link.seq && other.prev_hash == link.prev_hash)
            {
                ChainBreak::Forked { seq: link.seq }
            } else if stored_hashes.contains(link.prev_hash.as_str()) {
                let written_at = chained
                    .iter()
                    .find(|(_, other)| other.hash == link.prev_hash)
                    .map(|(_, other)| other.seq.saturating_add(1))
                    .unwrap_or(link.seq);
                ChainBreak::ReorderedEvents {
                    seq: link.seq,
                    written_at,
                }
            } else {
                // The predecessor was rewritten, its own hash recomputed to match.
                ChainBreak::EditedEvent {
                    seq: link.seq.saturating_sub(1),
                }
            };
            return report(Some(broken), i as u64, head);
        }
        head = Some(ChainHead {
            seq: link.seq,
            hash: link.hash.clone(),
        });
    }
    // The locks remember every position and hash that was ever written.
    for lock in &trail.locks {
        match chained.iter().find(|(_, l)| l.seq == lock.seq) {
            None => {
                return report(
                    Some(ChainBreak::DeletedEvent { seq: lock.seq }),
                    chained.len() as u64,
                    head,
                )
            }
            Some((_, l)) if l.hash != lock.hash => {
                return report(
                    Some(ChainBreak::EditedEvent { seq: lock.seq }),
                    chained.len() as u64,
                    head,
                )
            }
            Some(_) => {}
        }
    }
    report(None, chained.len() as u64, head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(n: u64) -> AuditEvent {
        AuditEvent {
            egress_request_id: "req-1".into(),
            at: format!("2026-01-01T00:00:{n:02}.000Z"),
            actor: "system:test".into(),
            actor_email: None,
            action: format!("step-{n}"),
            outcome: "success".into(),
            detail: json!({ "n": n, "b": { "z": 1, "a": [1, "x"] } }),
        }
    }

    /// A valid trail of `n` chained events (with their locks).
    fn trail(n: u64) -> AuditTrail {
        let mut head = None;
        let mut t = AuditTrail::default();
        for i in 1..=n {
            let e = event(i);
            let link = next_link(&e, head.as_ref());
            head = Some(ChainHead {
                seq: link.seq,
                hash: link.hash.clone(),
            });
            t.locks.push(head.clone().unwrap());
            t.events.push(StoredEvent {
                event_key: format!("{}#{i}", e.at),
                event: e,
                link: Some(link),
            });
        }
        t
    }

    #[test]
    fn when_the_chain_is_intact_then_it_verifies_and_reports_the_head() {
        let t = trail(4);
        let r = verify(&t);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.length, 4);
        assert_eq!(r.head, t.locks.last().cloned());
    }

    #[test]
    fn when_an_edited_event_sits_before_a_huge_seq_then_the_verifier_answers_at_once() {
        // Found by `make fuzz` (audit_chain): the search for where an edited event was written
        // ran up to the largest stored seq, 2^64 hashes for a seq of u64::MAX.
        let mut t = trail(2);
        t.events[0].event.outcome = "edited".into();
        if let Some(l) = t.events[1].link.as_mut() {
            l.seq = u64::MAX;
        }
        let r = verify(&t);
        assert_eq!(r.first_break, Some(ChainBreak::EditedEvent { seq: 1 }));
    }

    #[test]
    fn when_the_first_event_follows_one_stored_at_the_largest_seq_then_it_is_a_break_not_a_panic() {
        // Found by the fuzz run of `make test` (audit_chain, seed 1796277405178814483): the
        // reordered event's position, its predecessor's seq + 1, overflowed at u64::MAX.
        let (first, stray) = (event(1), event(2));
        let stray_hash = "cd".repeat(32);
        let t = AuditTrail {
            events: vec![
                StoredEvent {
                    event_key: "a".into(),
                    link: Some(ChainLink {
                        seq: 1,
                        hash: event_hash(&first, 1, &stray_hash),
                        prev_hash: stray_hash.clone(),
                    }),
                    event: first,
                },
                StoredEvent {
                    event_key: "b".into(),
                    link: Some(ChainLink {
                        seq: u64::MAX,
                        hash: stray_hash,
                        prev_hash: GENESIS.to_string(),
                    }),
                    event: stray,
                },
            ],
            locks: Vec::new(),
        };
        let r = verify(&t);
        assert!(!r.valid);
        assert_eq!(
            r.first_break,
            Some(ChainBreak::ReorderedEvents {
                seq: 1,
                written_at: u64::MAX
            })
        );
    }

    #[test]
    fn when_an_event_claims_seq_0_with_a_foreign_predecessor_then_it_is_a_break_not_a_panic() {
        // Found by `make fuzz` (audit_chain): `seq - 1` underflowed for a seq-0 event whose
        // hash matches but whose prev_hash is not the genesis.
        let e = event(1);
        let prev = "ab".repeat(32);
        let link = ChainLink {
            seq: 0,
            hash: event_hash(&e, 0, &prev),
            prev_hash: prev,
        };
        let t = AuditTrail {
            events: vec![StoredEvent {
                event_key: "k".into(),
                event: e,
                link: Some(link),
            }],
            locks: Vec::new(),
        };
        let r = verify(&t);
        assert!(!r.valid);
        assert_eq!(r.first_break, Some(ChainBreak::EditedEvent { seq: 0 }));
    }

    #[test]
    fn when_the_first_event_is_relabelled_seq_0_and_rehashed_then_the_chain_is_not_valid() {
        // Found by `make fuzz` (audit_chain): with its lock gone, a chain starting at seq 0
        // verified as valid, though chains are 1, 2, 3...
        let mut t = trail(1);
        let first = &mut t.events[0];
        if let Some(l) = first.link.as_mut() {
            l.seq = 0;
            l.hash = event_hash(&first.event, 0, GENESIS);
        }
        t.locks.clear();
        let r = verify(&t);
        assert_eq!(r.first_break, Some(ChainBreak::EditedEvent { seq: 0 }));
    }

    #[test]
    fn when_json_keys_come_in_any_order_then_the_hash_is_the_same() {
        let mut a = event(1);
        a.detail = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[3]}}"#).unwrap();
        let mut b = event(1);
        b.detail = serde_json::from_str(r#"{"a":{"x":[3],"y":2},"b":1}"#).unwrap();
        assert_eq!(event_hash(&a, 1, GENESIS), event_hash(&b, 1, GENESIS));
        assert_eq!(canonical_json(&a.detail), r#"{"a":{"x":[3],"y":2},"b":1}"#);
    }

    #[test]
    fn when_an_event_is_edited_then_the_chain_names_that_event() {
        let mut t = trail(4);
        t.events[1].event.detail = json!({ "n": 99 });
        assert_eq!(
            verify(&t).first_break,
            Some(ChainBreak::EditedEvent { seq: 2 })
        );
    }

    #[test]
    fn when_an_event_is_edited_and_rehashed_then_the_next_link_or_the_lock_catches_it() {
        let mut t = trail(4);
        let e = &mut t.events[1];
        e.event.outcome = "refused".into();
        let link = e.link.as_mut().unwrap();
        link.hash = event_hash(&e.event, link.seq, &link.prev_hash);
        assert_eq!(
            verify(&t).first_break,
            Some(ChainBreak::EditedEvent { seq: 2 })
        );
        // Even the last event, which no successor links to: its lock remembers.
        let mut t = trail(4);
        let e = &mut t.events[3];
        e.event.outcome = "refused".into();
        let link = e.link.as_mut().unwrap();
        link.hash = event_hash(&e.event, link.seq, &link.prev_hash);
        assert_eq!(
            verify(&t).first_break,
            Some(ChainBreak::EditedEvent { seq: 4 })
        );
    }

    #[test]
    fn when_an_event_is_deleted_then_the_chain_names_the_gap() {
        let mut t = trail(4);
        t.events.remove(1);
        assert_eq!(
            verify(&t).first_break,
            Some(ChainBreak::DeletedEvent { seq: 2 })
        );
        let mut t = trail(4);
        t.events.pop();
        assert_eq!(
            verify(&t).first_break,
            Some(ChainBreak::DeletedEvent { seq: 4 }),
            "the last event's lock remembers it"
        );
    }

    #[test]
    fn when_events_are_reordered_then_the_chain_names_the_reordering() {
        let mut t = trail(4);
        // Swap the positions of events 2 and 3.
        t.events[1].link.as_mut().unwrap().seq = 3;
        t.events[2].link.as_mut().unwrap().seq = 2;
        assert_eq!(
            verify(&t).first_break,
            Some(ChainBreak::ReorderedEvents {
                seq: 2,
                written_at: 3
            })
        );
    }

    #[test]
    fn when_two_events_claim_one_position_then_the_chain_is_forked() {
        let mut t = trail(3);
        let mut other = event(7);
        other.action = "download".into();
        let link = next_link(&other, Some(&t.locks[1]));
        t.events.push(StoredEvent {
            event_key: "z".into(),
            event: other,
            link: Some(link),
        });
        assert_eq!(verify(&t).first_break, Some(ChainBreak::Forked { seq: 3 }));
    }

    #[test]
    fn when_step_functions_wrote_an_event_then_it_is_listed_as_unchained() {
        let mut t = trail(2);
        t.events.push(StoredEvent {
            event_key: "2026-01-01T00:00:00.000Z#sfn".into(),
            event: event(0),
            link: None,
        });
        let r = verify(&t);
        assert!(r.valid);
        assert_eq!(
            r.unchained,
            vec!["2026-01-01T00:00:00.000Z#sfn".to_string()]
        );
    }

    #[test]
    fn when_the_break_is_named_then_the_name_is_stable() {
        assert_eq!(ChainBreak::EditedEvent { seq: 1 }.name(), "EditedEvent");
        assert_eq!(ChainBreak::DeletedEvent { seq: 1 }.name(), "DeletedEvent");
        assert_eq!(
            ChainBreak::ReorderedEvents {
                seq: 1,
                written_at: 2
            }
            .name(),
            "ReorderedEvents"
        );
        assert_eq!(ChainBreak::Forked { seq: 1 }.name(), "Forked");
        assert!(ChainBreak::Forked { seq: 3 }
            .to_string()
            .starts_with("Forked"));
    }
}
