//! Terminal output decoded as UTF-8 as it arrives in pieces (SPEC 13.2): a sequence cut by a
//! piece's end is carried into the next piece, so no character is split across recorded
//! events; invalid bytes become U+FFFD exactly as a whole-stream lossy decoding would have it.

/// The longest incomplete sequence a piece can end with (a 4-byte character less one).
const MAX_CARRY: usize = 3;

#[derive(Debug, Default)]
pub struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `bytes` and what was carried before them, less an incomplete sequence
    /// at the end, which is kept for the next call.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        let joined;
        let input = if self.carry.is_empty() {
            bytes
        } else {
            let mut carried = std::mem::take(&mut self.carry);
            carried.extend_from_slice(bytes);
            joined = carried;
            &joined[..]
        };
        let mut text = String::with_capacity(input.len());
        let mut rest = input;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    return text;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    // Checked by from_utf8 just now.
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match error.error_len() {
                        Some(invalid) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[invalid..];
                        }
                        None => {
                            debug_assert!(after.len() <= MAX_CARRY);
                            self.carry.extend_from_slice(after);
                            return text;
                        }
                    }
                }
            }
        }
    }

    /// What is left at the end of the stream: an incomplete sequence is one U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.carry.is_empty() {
            return String::new();
        }
        self.carry.clear();
        char::REPLACEMENT_CHARACTER.to_string()
    }

    /// Bytes carried into the next piece.
    pub fn carried(&self) -> usize {
        self.carry.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_pieces(bytes: &[u8], cut: usize) -> Vec<String> {
        let mut stream = Utf8Stream::default();
        let mut pieces: Vec<String> = bytes.chunks(cut).map(|c| stream.decode(c)).collect();
        pieces.push(stream.finish());
        pieces
    }

    #[test]
    fn a_character_cut_between_pieces_is_decoded_whole_in_the_later_one() {
        let text = "héllo — 日本 🎉";
        for cut in 1..=5 {
            let pieces = in_pieces(text.as_bytes(), cut);
            assert_eq!(pieces.concat(), text, "cut every {cut} bytes");
        }
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.decode(&"🎉".as_bytes()[..2]), "");
        assert_eq!(stream.carried(), 2);
        assert_eq!(stream.decode(&"🎉".as_bytes()[2..]), "🎉");
    }

    #[test]
    fn invalid_bytes_read_as_a_lossy_decoding_of_the_whole_stream_would() {
        let mut bytes = b"ok \xff\xfe then \xe2\x82 cut ".to_vec();
        bytes.extend_from_slice("é".as_bytes());
        bytes.extend_from_slice(b"\xf0\x9f");
        let whole = String::from_utf8_lossy(&bytes).into_owned();
        for cut in 1..=7 {
            assert_eq!(
                in_pieces(&bytes, cut).concat(),
                whole,
                "cut every {cut} bytes"
            );
        }
    }
}
