//! A batch of entries read together: a range of a chain's links joined with their entries
//! (walks), or entries waiting in the linker's queue. Every value is in one text buffer, so
//! a batch costs a few allocations however many entries it holds, and its entries are read
//! as borrowed [`EntryFields`].
//!
//! A batch is assembled from two range reads, each one index descent: the links of a range
//! of `seq` (by `(account_id, seq)`) or the queue's first ids, then the account's entries
//! between the smallest and the largest of those ids (by `(account_id, id)`). The linker
//! appends entries in id order, so that id range holds little else; where it holds too
//! much (an entry committed long after its id was made), the read stops at
//! [`BatchBuilder::entry_limit`] and the rest are read by id.

use spog_core::Timestamp;
use spog_core::audit::EntryFields;

/// The entry columns a walk reads, in the order [`BatchBuilder::push_entry`] takes them:
/// every text column, then `occurred_at` and `recorded_at`.
pub(crate) const ENTRY_COLUMNS: &str = "id, account_id, organization_id, actor_type, actor_id, \
     actor_email, actor_name, source, ip, user_agent, request_id, action, resource_type, \
     resource_id, resource_name, outcome, before_state, after_state, metadata, credential_id, \
     credential_name, occurred_at, recorded_at";
/// Text columns in [`ENTRY_COLUMNS`].
pub(crate) const ENTRY_TEXT_COLUMNS: usize = 21;
/// The link columns a walk reads, in the order [`BatchBuilder::push_link`] takes them.
pub(crate) const LINK_COLUMNS: &str = "entry_id, seq, prev_hash, hash";

/// A value's place in the batch's text; `len == usize::MAX` for NULL.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    len: usize,
}

const NULL: Span = Span {
    start: 0,
    len: usize::MAX,
};

/// An entry's link; `seq: None` (and NULL hashes) for an entry not linked yet.
#[derive(Debug)]
struct Link {
    entry_id: Span,
    seq: Option<i64>,
    prev_hash: Span,
    hash: Span,
}

#[derive(Debug)]
struct Entry {
    text: [Span; ENTRY_TEXT_COLUMNS],
    occurred_at: i64,
    recorded_at: Option<i64>,
}

/// Entries with their links: those of a range of a chain that match the walk's filter, in
/// `seq` order, or queued ones in id order.
#[derive(Debug)]
pub struct ChainBatch {
    text: String,
    rows: Vec<(Link, Entry)>,
}

impl ChainBatch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The entries, in `seq` order (queued ones in id order).
    pub fn fields(&self) -> impl Iterator<Item = EntryFields<'_>> {
        self.rows.iter().map(|(link, entry)| {
            let opt = |span: Span| get(&self.text, span);
            let text = |i: usize| opt(entry.text[i]).unwrap_or_default();
            EntryFields {
                id: text(0),
                seq: link.seq,
                occurred_at: Timestamp::from_micros(entry.occurred_at),
                account_id: text(1),
                organization_id: opt(entry.text[2]),
                actor_type: text(3),
                actor_id: opt(entry.text[4]),
                actor_email: opt(entry.text[5]),
                actor_name: opt(entry.text[6]),
                source: text(7),
                ip: opt(entry.text[8]),
                user_agent: opt(entry.text[9]),
                request_id: opt(entry.text[10]),
                action: text(11),
                resource_type: text(12),
                resource_id: opt(entry.text[13]),
                resource_name: opt(entry.text[14]),
                outcome: text(15),
                before: opt(entry.text[16]),
                after: opt(entry.text[17]),
                metadata: opt(entry.text[18]),
                credential_id: opt(entry.text[19]),
                credential_name: opt(entry.text[20]),
                recorded_at: entry.recorded_at.map(Timestamp::from_micros),
                prev_hash: opt(link.prev_hash),
                hash: opt(link.hash),
            }
        })
    }
}

fn get(text: &str, span: Span) -> Option<&str> {
    (span.len != usize::MAX).then(|| &text[span.start..span.start + span.len])
}

/// Assembles a [`ChainBatch`]: links (or queued ids) first, in their order, then entries in
/// id order.
#[derive(Debug, Default)]
pub(crate) struct BatchBuilder {
    text: String,
    links: Vec<Link>,
    /// Indexes into `links`, by entry id.
    by_id: Vec<usize>,
    entries: Vec<Entry>,
}

impl BatchBuilder {
    fn span(&mut self, value: Option<&str>) -> Span {
        let Some(value) = value else { return NULL };
        let start = self.text.len();
        self.text.push_str(value);
        Span {
            start,
            len: value.len(),
        }
    }

    pub(crate) fn push_link(&mut self, entry_id: &str, seq: i64, prev_hash: &str, hash: &str) {
        let link = Link {
            entry_id: self.span(Some(entry_id)),
            seq: Some(seq),
            prev_hash: self.span(Some(prev_hash)),
            hash: self.span(Some(hash)),
        };
        self.links.push(link);
    }

    /// An entry waiting to be linked.
    pub(crate) fn push_queued(&mut self, entry_id: &str) {
        let link = Link {
            entry_id: self.span(Some(entry_id)),
            seq: None,
            prev_hash: NULL,
            hash: NULL,
        };
        self.links.push(link);
    }

    /// The `seq` of the last link pushed.
    pub(crate) fn last_seq(&self) -> Option<i64> {
        self.links.last().and_then(|link| link.seq)
    }

    fn link_id(&self, link: usize) -> &str {
        get(&self.text, self.links[link].entry_id).unwrap_or_default()
    }

    /// The smallest and largest entry id the links name, once they are all pushed; `None`
    /// for a range without links.
    pub(crate) fn id_range(&mut self) -> Option<(String, String)> {
        let mut by_id: Vec<usize> = (0..self.links.len()).collect();
        by_id.sort_unstable_by(|a, b| self.link_id(*a).cmp(self.link_id(*b)));
        self.by_id = by_id;
        let first = *self.by_id.first()?;
        let last = *self.by_id.last()?;
        Some((
            self.link_id(first).to_owned(),
            self.link_id(last).to_owned(),
        ))
    }

    /// How many entries the range read may return: enough for every link's entry and as
    /// many others.
    pub(crate) fn entry_limit(&self) -> i64 {
        self.links.len() as i64 * 2 + 64
    }

    /// Pushes an entry read in id order: its [`ENTRY_COLUMNS`] text values, then
    /// `occurred_at` and `recorded_at`.
    pub(crate) fn push_entry<'a>(
        &mut self,
        text: impl Fn(usize) -> Option<&'a str>,
        occurred_at: i64,
        recorded_at: Option<i64>,
    ) {
        let mut spans = [NULL; ENTRY_TEXT_COLUMNS];
        for (i, span) in spans.iter_mut().enumerate() {
            *span = self.span(text(i));
        }
        self.entries.push(Entry {
            text: spans,
            occurred_at,
            recorded_at,
        });
    }

    pub(crate) fn entries_read(&self) -> usize {
        self.entries.len()
    }

    /// The ids of links after the last entry read, which a range read stopped short of.
    pub(crate) fn ids_after_last_entry(&self) -> Vec<String> {
        let last = self
            .entries
            .last()
            .and_then(|e| get(&self.text, e.text[0]))
            .unwrap_or_default();
        self.by_id
            .iter()
            .map(|link| self.link_id(*link))
            .filter(|id| *id > last)
            .map(str::to_owned)
            .collect()
    }

    /// Joins the links with the entries read (in id order); a link whose entry was not read
    /// (it does not match the filter, or is gone) is left out.
    pub(crate) fn finish(self) -> ChainBatch {
        let text = self.text;
        let id = |entry: &Entry| get(&text, entry.text[0]).unwrap_or_default();
        let mut found: Vec<Option<usize>> = vec![None; self.links.len()];
        let mut entry = 0;
        for &link in &self.by_id {
            let wanted = get(&text, self.links[link].entry_id).unwrap_or_default();
            while entry < self.entries.len() && id(&self.entries[entry]) < wanted {
                entry += 1;
            }
            if entry < self.entries.len() && id(&self.entries[entry]) == wanted {
                found[link] = Some(entry);
            }
        }
        let mut entries: Vec<Option<Entry>> = self.entries.into_iter().map(Some).collect();
        let rows = self
            .links
            .into_iter()
            .zip(found)
            .filter_map(|(link, entry)| Some((link, entries[entry?].take()?)))
            .collect();
        ChainBatch { text, rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(builder: &mut BatchBuilder, id: &str) {
        builder.push_entry(
            |i| match i {
                0 => Some(id),
                16..=20 => None,
                _ => Some("x"),
            },
            7,
            None,
        );
    }

    #[test]
    fn links_are_joined_with_their_entries_in_seq_order() {
        let mut builder = BatchBuilder::default();
        builder.push_link("c", 1, "p1", "h1");
        builder.push_link("a", 2, "h1", "h2");
        builder.push_link("d", 3, "h2", "h3");
        builder.push_link("b", 4, "h3", "h4");
        assert_eq!(builder.id_range(), Some(("a".into(), "d".into())));
        // "b" is filtered out, "bb" belongs to another range.
        for id in ["a", "bb", "c", "d"] {
            entry(&mut builder, id);
        }
        assert!(builder.ids_after_last_entry().is_empty());
        let batch = builder.finish();
        let rows: Vec<(&str, Option<i64>, Option<&str>)> =
            batch.fields().map(|f| (f.id, f.seq, f.hash)).collect();
        assert_eq!(
            rows,
            [
                ("c", Some(1), Some("h1")),
                ("a", Some(2), Some("h2")),
                ("d", Some(3), Some("h3"))
            ]
        );
        let first = batch.fields().next().unwrap();
        assert_eq!((first.before, first.actor_type), (None, "x"));
        assert_eq!(first.occurred_at, Timestamp::from_micros(7));
    }

    #[test]
    fn a_range_read_cut_short_names_the_ids_still_to_read() {
        let mut builder = BatchBuilder::default();
        for (seq, id) in ["m", "a", "z", "q"].iter().enumerate() {
            builder.push_link(id, seq as i64 + 1, "p", "h");
        }
        builder.id_range();
        entry(&mut builder, "a");
        entry(&mut builder, "b");
        assert_eq!(builder.ids_after_last_entry(), ["m", "q", "z"]);
        entry(&mut builder, "m");
        entry(&mut builder, "q");
        entry(&mut builder, "z");
        let batch = builder.finish();
        let ids: Vec<&str> = batch.fields().map(|f| f.id).collect();
        assert_eq!(ids, ["m", "a", "z", "q"]);
    }
}
