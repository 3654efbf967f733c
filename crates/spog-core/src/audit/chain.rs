//! Streaming verification of one account's chain: entries are pushed in `seq` order and only
//! the previous link is kept, so any length verifies in constant memory.

use serde::Serialize;
use utoipa::ToSchema;

use super::canonical::{chain_digest, write_canonical_json};
use super::entry::{AuditEntry, EntryFields};

/// `prev_hash` of an account's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Reports beyond this many are counted but not listed, keeping memory bounded.
const MAX_LISTED: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrokenReason {
    /// The entry's content no longer produces its stored hash: it was altered.
    HashMismatch,
    /// The entry does not point at its predecessor: a link was altered, or an entry removed
    /// or reordered.
    PrevMismatch,
    /// `seq` does not follow its predecessor's.
    SeqGap,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: String,
    pub reason: BrokenReason,
    pub expected: String,
    pub found: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerifyReport {
    pub valid: bool,
    pub entries_checked: u64,
    pub head_seq: i64,
    pub head_hash: String,
    pub broken_links: Vec<BrokenLink>,
    /// How many broken links were found beyond those listed.
    pub broken_links_omitted: u64,
}

/// Checks entries pushed in `seq` order. An entry's own hash depends only on its stored
/// fields and `prev_hash`, so separate parts of a chain can be checked apart (on several
/// cores, see [`ChainVerifier::segment`]) and then joined, which checks only where they meet.
#[derive(Debug)]
pub struct ChainVerifier {
    /// Where the next entry must continue from: `(seq, prev_hash)`. A segment learns it from
    /// its first entry, which is checked when the segment is appended to what precedes it.
    next: Option<(i64, String)>,
    first: Option<Follower>,
    checked: u64,
    broken: Vec<BrokenLink>,
    omitted: u64,
    anchors: Vec<(i64, String)>,
    /// The entry being hashed, kept to spare an allocation per entry.
    canonical: Vec<u8>,
}

/// A segment's first entry, as far as its predecessor is concerned.
#[derive(Debug)]
struct Follower {
    seq: i64,
    id: String,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier of a whole chain, from its first entry.
    pub fn new() -> Self {
        Self {
            next: Some((1, GENESIS_HASH.to_owned())),
            ..Self::segment_of(Vec::new())
        }
    }

    fn segment_of(anchors: Vec<(i64, String)>) -> Self {
        Self {
            next: None,
            first: None,
            checked: 0,
            broken: Vec::new(),
            omitted: 0,
            anchors,
            canonical: Vec::with_capacity(1024),
        }
    }

    /// An empty verifier for a later part of this chain, with the same anchors: push that
    /// part's entries into it, then [`append`](Self::append) it in order.
    pub fn segment(&self) -> Self {
        Self::segment_of(self.anchors.clone())
    }

    /// Checks the next linked entry. Entries must come in ascending `seq` order.
    pub fn push(&mut self, entry: &AuditEntry) {
        self.push_fields(&entry.fields());
    }

    /// [`push`](Self::push) for an entry's borrowed fields.
    pub fn push_fields(&mut self, entry: &EntryFields<'_>) {
        let seq = entry.seq.unwrap_or(0);
        let prev = entry.prev_hash.unwrap_or("");
        let stored = entry.hash.unwrap_or("");
        if self.next.is_some() {
            self.follow(seq, entry.id, prev);
        } else {
            self.first = Some(Follower {
                seq,
                id: entry.id.to_owned(),
                prev_hash: prev.to_owned(),
            });
        }
        self.canonical.clear();
        write_canonical_json(entry, &mut self.canonical);
        let mut computed = [0u8; 64];
        hex::encode_to_slice(chain_digest(prev, &self.canonical), &mut computed)
            .expect("64 hex digits for 32 bytes");
        if computed != stored.as_bytes() {
            let computed = String::from_utf8_lossy(&computed).into_owned();
            self.report(seq, entry.id, BrokenReason::HashMismatch, computed, stored);
        }
        self.check_anchors(seq, entry.id, stored);
        self.checked += 1;
        match &mut self.next {
            Some((next_seq, next_prev)) => {
                *next_seq = seq + 1;
                next_prev.clear();
                next_prev.push_str(stored);
            }
            None => self.next = Some((seq + 1, stored.to_owned())),
        }
    }

    /// Continues this verifier with a segment checked apart, the part of the chain that
    /// follows what this one has seen.
    pub fn append(&mut self, segment: ChainVerifier) {
        if let Some(first) = segment.first {
            if self.next.is_some() {
                self.follow(first.seq, &first.id, &first.prev_hash);
            } else {
                // Nothing seen yet: the joined segment starts where the appended one does.
                self.first = Some(first);
            }
        }
        self.checked += segment.checked;
        self.omitted += segment.omitted;
        for link in segment.broken {
            self.push_report(link);
        }
        if segment.next.is_some() {
            self.next = segment.next;
        }
    }

    /// Checks that the entry `(seq, id, prev_hash)` continues from the one before it.
    fn follow(&mut self, seq: i64, id: &str, prev: &str) {
        let Some((expected_seq, expected_prev)) = &self.next else {
            return;
        };
        let expected_seq = *expected_seq;
        let broken_prev = (prev != expected_prev).then(|| expected_prev.clone());
        if seq != expected_seq {
            let found = seq.to_string();
            self.report(
                seq,
                id,
                BrokenReason::SeqGap,
                expected_seq.to_string(),
                &found,
            );
        }
        if let Some(expected_prev) = broken_prev {
            self.report(seq, id, BrokenReason::PrevMismatch, expected_prev, prev);
        }
    }

    /// Adds a head known independently of the rows (the stored chain head, a signed
    /// checkpoint): the entry at `seq` must carry `hash`, and a chain that ends before `seq`
    /// was cut short.
    pub fn anchor(&mut self, seq: i64, hash: &str) {
        self.anchors.push((seq, hash.to_owned()));
    }

    fn check_anchors(&mut self, seq: i64, id: &str, stored: &str) {
        let mismatched: Vec<String> = self
            .anchors
            .iter()
            .filter(|(at, hash)| *at == seq && hash != stored)
            .map(|(_, hash)| hash.clone())
            .collect();
        for expected in mismatched {
            self.report(seq, id, BrokenReason::HashMismatch, expected, stored);
        }
    }

    pub fn finish(mut self) -> VerifyReport {
        let (next_seq, head_hash) = self.next.take().unwrap_or((1, GENESIS_HASH.to_owned()));
        let last_seq = next_seq - 1;
        let cut_short: Vec<i64> = self
            .anchors
            .iter()
            .map(|(seq, _)| *seq)
            .filter(|seq| *seq > last_seq)
            .collect();
        for seq in cut_short {
            self.push_report(BrokenLink {
                seq: last_seq + 1,
                id: String::new(),
                reason: BrokenReason::SeqGap,
                expected: format!("entries up to seq {seq}"),
                found: format!("chain ends at seq {last_seq}"),
            });
        }
        VerifyReport {
            valid: self.broken.is_empty() && self.omitted == 0,
            entries_checked: self.checked,
            head_seq: last_seq,
            head_hash,
            broken_links: self.broken,
            broken_links_omitted: self.omitted,
        }
    }

    fn report(&mut self, seq: i64, id: &str, reason: BrokenReason, expected: String, found: &str) {
        self.push_report(BrokenLink {
            seq,
            id: id.to_owned(),
            reason,
            expected,
            found: found.to_owned(),
        });
    }

    fn push_report(&mut self, link: BrokenLink) {
        if self.broken.len() < MAX_LISTED {
            self.broken.push(link);
        } else {
            self.omitted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ActorType, Outcome, Source, canonical_json, chain_hash};
    use crate::time::Timestamp;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut entry = AuditEntry {
                    id: format!("e{seq}"),
                    seq: Some(seq),
                    occurred_at: Timestamp::from_micros(seq * 1_000_000),
                    account_id: "a".into(),
                    organization_id: None,
                    actor_type: ActorType::System,
                    actor_id: None,
                    actor_email: None,
                    actor_name: None,
                    source: Source::Api,
                    ip: None,
                    user_agent: None,
                    request_id: None,
                    action: "host.create".into(),
                    resource_type: "host".into(),
                    resource_id: Some(format!("h{seq}")),
                    resource_name: None,
                    outcome: Outcome::Success,
                    before: None,
                    after: None,
                    metadata: None,
                    credential_id: None,
                    credential_name: None,
                    recorded_at: None,
                    prev_hash: Some(prev.clone()),
                    hash: None,
                };
                let hash = chain_hash(&prev, &canonical_json(&entry));
                entry.hash = Some(hash.clone());
                prev = hash;
                entry
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> VerifyReport {
        let mut verifier = ChainVerifier::new();
        entries.iter().for_each(|e| verifier.push(e));
        verifier.finish()
    }

    fn reasons(report: &VerifyReport) -> Vec<(i64, BrokenReason)> {
        report
            .broken_links
            .iter()
            .map(|b| (b.seq, b.reason))
            .collect()
    }

    #[test]
    fn an_intact_chain_is_valid() {
        let entries = chain(5);
        let report = verify(&entries);
        assert!(report.valid);
        assert_eq!(report.entries_checked, 5);
        assert_eq!(report.head_seq, 5);
        assert_eq!(Some(report.head_hash), entries[4].hash.clone());
    }

    #[test]
    fn an_edited_field_is_a_hash_mismatch() {
        let mut entries = chain(5);
        entries[2].resource_name = Some("edited".into());
        assert_eq!(
            reasons(&verify(&entries)),
            [(3, BrokenReason::HashMismatch)]
        );
    }

    #[test]
    fn a_deleted_entry_is_a_gap_and_a_broken_link() {
        let mut entries = chain(5);
        entries.remove(2);
        assert_eq!(
            reasons(&verify(&entries)),
            [(4, BrokenReason::SeqGap), (4, BrokenReason::PrevMismatch)]
        );
    }

    #[test]
    fn swapped_entries_break_both_positions() {
        let mut entries = chain(5);
        let (a, b) = (entries[1].seq, entries[3].seq);
        entries.swap(1, 3);
        entries[1].seq = a;
        entries[3].seq = b;
        let found = reasons(&verify(&entries));
        assert!(found.contains(&(2, BrokenReason::HashMismatch)));
        assert!(found.contains(&(2, BrokenReason::PrevMismatch)));
        assert!(found.contains(&(4, BrokenReason::HashMismatch)));
    }

    #[test]
    fn a_truncated_tail_is_caught_only_against_an_anchor() {
        let entries = chain(5);
        assert!(verify(&entries[..3]).valid);
        let mut verifier = ChainVerifier::new();
        verifier.anchor(5, entries[4].hash.as_deref().unwrap());
        entries[..3].iter().for_each(|e| verifier.push(e));
        assert_eq!(reasons(&verifier.finish()), [(4, BrokenReason::SeqGap)]);
    }

    #[test]
    fn a_rewritten_chain_disagrees_with_its_anchor() {
        let entries = chain(5);
        let mut verifier = ChainVerifier::new();
        verifier.anchor(3, &"ab".repeat(32));
        entries.iter().for_each(|e| verifier.push(e));
        assert_eq!(
            reasons(&verifier.finish()),
            [(3, BrokenReason::HashMismatch)]
        );
    }

    #[test]
    fn segments_checked_apart_and_joined_agree_with_one_pass() {
        let intact = chain(7);
        let mut edited = chain(7);
        edited[3].action = "host.delete".into();
        let mut deleted = chain(7);
        deleted.remove(3);
        let mut swapped = chain(7);
        swapped.swap(2, 3);
        for entries in [
            intact.clone(),
            edited,
            deleted,
            swapped,
            intact[..5].to_vec(),
        ] {
            let anchored = |verifier: &mut ChainVerifier| {
                verifier.anchor(7, intact[6].hash.as_deref().unwrap());
            };
            let mut one_pass = ChainVerifier::new();
            anchored(&mut one_pass);
            entries.iter().for_each(|e| one_pass.push(e));
            let expected = one_pass.finish();
            for size in 1..=entries.len() {
                let mut joined = ChainVerifier::new();
                anchored(&mut joined);
                // Every part but the first is first gathered into one segment of its own.
                let mut rest = joined.segment();
                for (n, part) in entries.chunks(size).enumerate() {
                    let mut segment = joined.segment();
                    part.iter().for_each(|e| segment.push(e));
                    if n == 0 {
                        joined.append(segment);
                    } else {
                        rest.append(segment);
                    }
                }
                joined.append(rest);
                assert_eq!(joined.finish(), expected, "segments of {size}");
            }
        }
    }
}
