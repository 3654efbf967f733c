//! Streaming verification of one account's chain: entries are pushed in `seq` order and only
//! the previous link is kept, so any length verifies in constant memory.

use serde::Serialize;
use utoipa::ToSchema;

use super::canonical::{chain_digest, write_canonical_json};
use super::entry::AuditEntry;

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

#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    checked: u64,
    broken: Vec<BrokenLink>,
    omitted: u64,
    anchors: Vec<(i64, String)>,
    /// The entry being hashed, kept to spare an allocation per entry.
    canonical: Vec<u8>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            checked: 0,
            broken: Vec::new(),
            omitted: 0,
            anchors: Vec::new(),
            canonical: Vec::with_capacity(1024),
        }
    }

    /// Checks the next linked entry. Entries must come in ascending `seq` order.
    pub fn push(&mut self, entry: &AuditEntry) {
        let seq = entry.seq.unwrap_or(0);
        let prev = entry.prev_hash.as_deref().unwrap_or("");
        let stored = entry.hash.as_deref().unwrap_or("");
        if seq != self.expected_seq {
            self.report(
                entry,
                BrokenReason::SeqGap,
                self.expected_seq.to_string(),
                seq.to_string(),
            );
        }
        if prev != self.prev_hash {
            let expected = self.prev_hash.clone();
            self.report(entry, BrokenReason::PrevMismatch, expected, prev.to_owned());
        }
        self.canonical.clear();
        write_canonical_json(entry, &mut self.canonical);
        let mut computed = [0u8; 64];
        hex::encode_to_slice(chain_digest(prev, &self.canonical), &mut computed)
            .expect("64 hex digits for 32 bytes");
        if computed != stored.as_bytes() {
            let computed = String::from_utf8_lossy(&computed).into_owned();
            self.report(
                entry,
                BrokenReason::HashMismatch,
                computed,
                stored.to_owned(),
            );
        }
        self.check_anchors(entry, stored);
        self.checked += 1;
        self.expected_seq = seq + 1;
        self.prev_hash.clear();
        self.prev_hash.push_str(stored);
    }

    /// Adds a head known independently of the rows (the stored chain head, a signed
    /// checkpoint): the entry at `seq` must carry `hash`, and a chain that ends before `seq`
    /// was cut short.
    pub fn anchor(&mut self, seq: i64, hash: &str) {
        self.anchors.push((seq, hash.to_owned()));
    }

    fn check_anchors(&mut self, entry: &AuditEntry, stored: &str) {
        let seq = entry.seq.unwrap_or(0);
        let mismatched: Vec<String> = self
            .anchors
            .iter()
            .filter(|(at, hash)| *at == seq && hash != stored)
            .map(|(_, hash)| hash.clone())
            .collect();
        for expected in mismatched {
            self.report(
                entry,
                BrokenReason::HashMismatch,
                expected,
                stored.to_owned(),
            );
        }
    }

    pub fn finish(mut self) -> VerifyReport {
        let last_seq = self.expected_seq - 1;
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
        let head_hash = if self.checked == 0 {
            GENESIS_HASH.to_owned()
        } else {
            self.prev_hash
        };
        VerifyReport {
            valid: self.broken.is_empty() && self.omitted == 0,
            entries_checked: self.checked,
            head_seq: self.expected_seq - 1,
            head_hash,
            broken_links: self.broken,
            broken_links_omitted: self.omitted,
        }
    }

    fn report(
        &mut self,
        entry: &AuditEntry,
        reason: BrokenReason,
        expected: String,
        found: String,
    ) {
        self.push_report(BrokenLink {
            seq: entry.seq.unwrap_or(0),
            id: entry.id.clone(),
            reason,
            expected,
            found,
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
}
