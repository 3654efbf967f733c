//! The plain text of a terminal recording, for search (SPEC 8.3 "Text search"): output and
//! input with ANSI escape and control sequences removed, kept in chunks that remember where
//! each event's text starts, so a match maps back to the event (time, code) it starts in.
//! Everything carries over event boundaries: an escape sequence split over two events is still
//! removed, and a word split over two events is one word in the text.

use serde::{Deserialize, Serialize};

use super::EventCode;

/// Characters of text per chunk (beyond the lead copied from the chunk before).
pub const CHUNK_CHARS: usize = 4096;
/// Characters of the chunk before that start each chunk, so a match of up to this many
/// characters across a chunk boundary lies whole in one chunk.
pub const LEAD_CHARS: usize = 200;
const _: () = assert!(*QUERY_CHARS.end() <= LEAD_CHARS);
/// Longest control string (OSC, DCS…) or CSI swallowed; beyond it the stripper gives up on
/// the sequence, so a garbled stream cannot hide the text after it.
const MAX_SEQUENCE: u32 = 4096;

/// Where the stripper is between two pieces of input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strip {
    #[default]
    Ground,
    /// After a CR (a LF right after it is the same line break).
    AfterCr,
    /// After ESC.
    Escape,
    /// ESC followed by intermediate bytes (`ESC ( B`), waiting for the final byte.
    EscapeIntermediate,
    /// In a control sequence (`ESC [` … final byte).
    Csi(u32),
    /// In a control string (OSC, DCS, SOS, PM, APC), ended by ST (`ESC \`) or, for OSC, BEL.
    String(u32),
    /// ESC inside a control string: `\` ends it.
    StringEscape(u32),
}

impl Strip {
    /// Appends the plain text of `input` to `out`, carrying the state over to the next input.
    pub fn feed(&mut self, input: &str, out: &mut String) {
        for c in input.chars() {
            *self = self.next(c, out);
        }
    }

    fn next(self, c: char, out: &mut String) -> Strip {
        use Strip::*;
        match self {
            Ground | AfterCr => ground(self == AfterCr, c, out),
            Escape => match c {
                '[' => Csi(0),
                ']' | 'P' | 'X' | '^' | '_' => String(0),
                '\u{20}'..='\u{2f}' => EscapeIntermediate,
                '\u{1b}' => Escape,
                _ => Ground,
            },
            EscapeIntermediate => match c {
                '\u{20}'..='\u{2f}' => EscapeIntermediate,
                _ => Ground,
            },
            Csi(n) => match c {
                '\u{40}'..='\u{7e}' => Ground,
                '\u{1b}' => Escape,
                // Parameters, intermediates and the controls a sequence may hold.
                '\u{0}'..='\u{3f}' if n < MAX_SEQUENCE => Csi(n + 1),
                _ => Ground,
            },
            String(n) | StringEscape(n) if n >= MAX_SEQUENCE => Ground,
            String(n) => match c {
                '\u{7}' | '\u{9c}' => Ground,
                '\u{1b}' => StringEscape(n + 1),
                _ => String(n + 1),
            },
            StringEscape(n) => match c {
                '\\' => Ground,
                '\u{1b}' => StringEscape(n + 1),
                _ => String(n + 1),
            },
        }
    }
}

/// One character outside any sequence.
fn ground(after_cr: bool, c: char, out: &mut String) -> Strip {
    match c {
        '\r' => {
            out.push('\n');
            Strip::AfterCr
        }
        '\n' if after_cr => Strip::Ground,
        '\n' => {
            out.push('\n');
            Strip::Ground
        }
        // A tab separates words as a space would.
        '\t' => {
            out.push(' ');
            Strip::Ground
        }
        '\u{1b}' => Strip::Escape,
        '\u{9b}' => Strip::Csi(0),
        '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => Strip::String(0),
        // Other C0 and C1 controls, and DEL.
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => Strip::Ground,
        _ => {
            out.push(c);
            Strip::Ground
        }
    }
}

/// Where an event's text starts in a chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    /// Characters from the start of the chunk's text.
    pub offset: usize,
    pub time: f64,
    pub code: EventCode,
}

/// A piece of a recording's text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chunk {
    /// Its place in the recording, from 0.
    pub seq: i64,
    /// Characters at its start copied from the chunk before.
    pub lead: usize,
    pub text: String,
    /// In offset order; the first is at offset 0 when there is text.
    pub marks: Vec<Mark>,
    /// Characters in `text`.
    pub chars: usize,
}

impl Chunk {
    fn is_full(&self) -> bool {
        self.chars >= self.lead + CHUNK_CHARS
    }

    /// The chunk after this full one: its last [`LEAD_CHARS`] characters and their marks.
    fn successor(&self) -> Chunk {
        let lead = self.chars.min(LEAD_CHARS);
        let from = self.chars - lead;
        let byte = byte_at(&self.text, from);
        let covering = self.marks.iter().rposition(|m| m.offset <= from);
        let marks = covering
            .map(|i| &self.marks[i..])
            .unwrap_or_default()
            .iter()
            .map(|m| Mark {
                offset: m.offset.saturating_sub(from),
                ..*m
            })
            .collect();
        Chunk {
            seq: self.seq + 1,
            lead,
            text: self.text[byte..].to_owned(),
            marks,
            chars: lead,
        }
    }

    /// The marks as stored: `offset:time:code` separated by spaces.
    pub fn encode_marks(&self) -> String {
        let mut out = String::with_capacity(self.marks.len() * 12);
        for (i, m) in self.marks.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&format!("{}:{}:{}", m.offset, m.time, m.code.as_str()));
        }
        out
    }

    /// Reads marks as [`Self::encode_marks`] wrote them; unreadable ones are left out.
    pub fn decode_marks(text: &str) -> Vec<Mark> {
        text.split(' ')
            .filter_map(|m| {
                let mut parts = m.splitn(3, ':');
                Some(Mark {
                    offset: parts.next()?.parse().ok()?,
                    time: parts.next()?.parse().ok()?,
                    code: EventCode::parse(parts.next()?)?,
                })
            })
            .collect()
    }

    /// A stored chunk.
    pub fn stored(seq: i64, lead: usize, text: String, marks: &str) -> Chunk {
        let chars = text.chars().count();
        Chunk {
            seq,
            lead,
            text,
            marks: Chunk::decode_marks(marks),
            chars,
        }
    }
}

/// The byte index of character `chars` of `text` (its length past the end).
fn byte_at(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(byte, _)| byte)
}

/// Turns events into chunks: the open (last) chunk grows until full, then the next starts.
#[derive(Debug, Default)]
pub struct Indexer {
    pub strip: Strip,
    /// The chunk being filled.
    pub open: Chunk,
    /// Chunks filled since the indexer was made or last drained.
    pub full: Vec<Chunk>,
}

impl Indexer {
    /// Resumes after `open` (the last chunk stored, or a new first one) in state `strip`.
    pub fn resume(strip: Strip, open: Chunk) -> Self {
        Self {
            strip,
            open,
            full: Vec::new(),
        }
    }

    /// Adds an event; only output and input have text.
    pub fn event(&mut self, time: f64, code: EventCode, data: &str) {
        if !matches!(code, EventCode::Output | EventCode::Input) {
            return;
        }
        let mut text = String::new();
        self.strip.feed(data, &mut text);
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let room = self.open.lead + CHUNK_CHARS - self.open.chars;
            let split = byte_at(rest, room);
            let (now, later) = rest.split_at(split);
            self.open.marks.push(Mark {
                offset: self.open.chars,
                time,
                code,
            });
            self.open.text.push_str(now);
            self.open.chars += now.chars().count();
            if self.open.is_full() {
                let next = self.open.successor();
                self.full.push(std::mem::replace(&mut self.open, next));
            }
            rest = later;
        }
    }

    /// Chunks to store: the full ones and the open one.
    pub fn changed(&self) -> impl Iterator<Item = &Chunk> {
        self.full.iter().chain(std::iter::once(&self.open))
    }
}

/// Shortest and longest text a search takes, in characters.
pub const QUERY_CHARS: std::ops::RangeInclusive<usize> = 3..=200;

/// The text of a search, `field` naming it in errors. Shorter than three characters it would
/// match nearly everything (and a trigram index cannot narrow it); longer than [`LEAD_CHARS`] a
/// match could cross more than a chunk's lead.
pub fn query(field: &str, text: &str) -> Result<String, crate::FieldError> {
    let chars = text.chars().count();
    if !QUERY_CHARS.contains(&chars) || text.trim().is_empty() {
        return Err(crate::FieldError::new(
            field,
            format!(
                "must be between {} and {} characters of text to search for",
                QUERY_CHARS.start(),
                QUERY_CHARS.end()
            ),
        ));
    }
    crate::validate::check_text(field, text)?;
    Ok(text.to_owned())
}

/// A match of a search in a chunk.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TextMatch {
    /// Seconds from the start of the recording of the event where the match starts.
    pub time: f64,
    /// `o` (output) or `i` (input).
    pub code: &'static str,
    /// Up to [`SNIPPET_CHARS`] characters of text around the match, on one line.
    pub snippet: String,
}

/// Characters of a match's snippet.
pub const SNIPPET_CHARS: usize = 120;
/// Characters shown before the match in its snippet.
const SNIPPET_BEFORE: usize = 40;

/// Lowercased character by character, so character positions stay those of `text`.
fn folded(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}

/// The matches of `query` (case-insensitive) in `chunk`, at most `limit`, in text order.
/// Matches wholly inside the chunk's lead were found in the chunk before and are left out.
pub fn find(chunk: &Chunk, query: &str, limit: usize) -> Vec<TextMatch> {
    let (text, query) = (folded(&chunk.text), folded(query));
    let query_chars = query.chars().count();
    if query_chars == 0 {
        return Vec::new();
    }
    let chars: Vec<char> = chunk.text.chars().collect();
    let mut found = Vec::new();
    let (mut last_byte, mut last_char) = (0, 0);
    for (byte, _) in text.match_indices(&query) {
        last_char += text[last_byte..byte].chars().count();
        last_byte = byte;
        if last_char + query_chars <= chunk.lead {
            continue;
        }
        let Some(mark) = chunk.marks.iter().rev().find(|m| m.offset <= last_char) else {
            continue;
        };
        let from = last_char.saturating_sub(SNIPPET_BEFORE);
        let to = (from + SNIPPET_CHARS).min(chars.len());
        let snippet = chars[from..to]
            .iter()
            .map(|&c| if c == '\n' { ' ' } else { c })
            .collect();
        found.push(TextMatch {
            time: mark.time,
            code: mark.code.as_str(),
            snippet,
        });
        if found.len() == limit {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(pieces: &[&str]) -> String {
        let (mut strip, mut out) = (Strip::default(), String::new());
        for piece in pieces {
            strip.feed(piece, &mut out);
        }
        out
    }

    #[test]
    fn escape_and_control_sequences_are_removed() {
        assert_eq!(
            plain(&["\x1b[1;31mred\x1b[0m plain\x1b]0;title\x07 more"]),
            "red plain more"
        );
        assert_eq!(plain(&["a\x1bP1$r0m\x1b\\b"]), "ab");
        assert_eq!(plain(&["\x1b(Bx\x1b=y\x07\x08z\x7f"]), "xyz");
        assert_eq!(plain(&["\u{9b}2Jclear"]), "clear");
        assert_eq!(plain(&["tab\there"]), "tab here");
    }

    #[test]
    fn line_breaks_are_one_per_line_ending() {
        assert_eq!(plain(&["a\r\nb\nc\rd"]), "a\nb\nc\nd");
        assert_eq!(plain(&["a\r", "\nb"]), "a\nb");
    }

    #[test]
    fn sequences_and_words_carry_over_event_boundaries() {
        assert_eq!(
            plain(&["gr\x1b[3", "2mee", "\x1b]0;t", "itle\x1b", "\\n"]),
            "green"
        );
        assert_eq!(plain(&["\x1b", "[0m", "ok"]), "ok");
    }

    #[test]
    fn an_unterminated_control_string_gives_up() {
        let long = "x".repeat(MAX_SEQUENCE as usize + 10);
        let text = plain(&["\x1b]0;", &long, "\x07after"]);
        assert!(text.ends_with("after"), "{text}");
        assert!(text.len() < 20);
    }

    fn index(events: &[(f64, EventCode, &str)]) -> Indexer {
        let mut indexer = Indexer::default();
        for (time, code, data) in events {
            indexer.event(*time, *code, data);
        }
        indexer
    }

    #[test]
    fn a_match_maps_to_the_event_it_starts_in() {
        use EventCode::*;
        let indexer = index(&[
            (0.5, Output, "$ "),
            (1.0, Input, "l"),
            (1.1, Input, "s\r"),
            (1.2, Resize, "80x24"),
            (2.0, Output, "\x1b[32mREAD"),
            (2.5, Output, "\x1b[0mME.md\r\n"),
        ]);
        assert!(indexer.full.is_empty());
        let chunk = &indexer.open;
        assert_eq!(chunk.text, "$ ls\nREADME.md\n");
        let matches = find(chunk, "ls", 20);
        assert_eq!(matches[0].time, 1.0);
        assert_eq!(matches[0].code, "i");
        let matches = find(chunk, "readme", 20);
        assert_eq!((matches[0].time, matches[0].code), (2.0, "o"));
        assert_eq!(matches[0].snippet, "$ ls README.md ");
        assert!(find(chunk, "nothing", 20).is_empty());
    }

    #[test]
    fn chunks_overlap_so_a_match_across_their_boundary_is_found_once() {
        let line = "0123456789".repeat(CHUNK_CHARS / 10);
        let mut indexer = index(&[
            (1.0, EventCode::Output, &line),
            (2.0, EventCode::Output, "abcneedle"),
            (3.0, EventCode::Output, "xyz"),
        ]);
        indexer.event(4.0, EventCode::Output, &"y".repeat(CHUNK_CHARS));
        assert_eq!(indexer.full.len(), 2);
        let (first, second) = (&indexer.full[0], &indexer.full[1]);
        assert_eq!(first.chars, CHUNK_CHARS);
        assert_eq!(second.lead, LEAD_CHARS);
        assert_eq!(second.marks[0].offset, 0);
        let hits: Vec<_> = [first, second, &indexer.open]
            .iter()
            .flat_map(|c| find(c, "needlexyz", 20))
            .collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].time, 2.0);
        // Across the first boundary: starts in the first chunk's digits.
        let hits: Vec<_> = [first, second]
            .iter()
            .flat_map(|c| find(c, "789abcneed", 20))
            .collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].time, 1.0);
    }

    #[test]
    fn marks_survive_storage() {
        let indexer = index(&[
            (0.25, EventCode::Output, "a"),
            (1e-6, EventCode::Input, "b"),
        ]);
        let encoded = indexer.open.encode_marks();
        let stored = Chunk::stored(0, 0, indexer.open.text.clone(), &encoded);
        assert_eq!(stored, indexer.open);
    }

    #[test]
    fn a_query_is_three_to_two_hundred_characters() {
        assert!(query("q", "abc").is_ok());
        assert!(query("q", &"é".repeat(200)).is_ok());
        for bad in ["ab", "   ", &"x".repeat(201), "nul\0"] {
            assert_eq!(query("q", bad).unwrap_err().field, "q");
        }
    }

    #[test]
    fn search_ignores_case_beyond_ascii() {
        let indexer = index(&[(0.0, EventCode::Output, "Grüße ÄRGER")]);
        assert_eq!(find(&indexer.open, "äRGer", 20).len(), 1);
        assert_eq!(find(&indexer.open, "GRÜSSE", 20).len(), 0);
    }
}
