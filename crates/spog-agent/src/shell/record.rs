//! The records of a `spog-agent shell` session: what the client sends the agent over the local
//! socket, and what the spool keeps, byte for byte the same:
//! `tag` (u8) · `elapsed_us` (u64 BE, since the session started, stamped by the client) ·
//! `len` (u32 BE) · `len` bytes.

use std::io::{self, Read};

/// `tag` + `elapsed_us` + `len`.
pub const RECORD_HEADER_LEN: usize = 1 + 8 + 4;
/// The most bytes one record carries (one frame's worth).
pub const MAX_RECORD_PAYLOAD: usize = spog_protocol::MAX_FRAME_PAYLOAD;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// What the program wrote (stdout and stderr, or the PTY).
    Output,
    /// What the user typed.
    Input,
    /// The user's terminal changed size: `cols` (u16 BE) · `rows` (u16 BE).
    Resize,
    /// The program ended: `kind` (u8: 0 exit code, 1 signal) · value (i32 BE).
    Exit,
}

impl Tag {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Tag::Output,
            1 => Tag::Input,
            2 => Tag::Resize,
            3 => Tag::Exit,
            _ => return None,
        })
    }

    fn byte(self) -> u8 {
        match self {
            Tag::Output => 0,
            Tag::Input => 1,
            Tag::Resize => 2,
            Tag::Exit => 3,
        }
    }

    /// Output and input are the session's bytes: what the hub records and acknowledges.
    pub fn carries_bytes(self) -> bool {
        matches!(self, Tag::Output | Tag::Input)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub tag: Tag,
    pub elapsed_us: u64,
    pub data: Vec<u8>,
}

/// How a program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Code(i32),
    Signal(i32),
}

impl Record {
    pub fn resize(elapsed_us: u64, cols: u16, rows: u16) -> Self {
        let mut data = cols.to_be_bytes().to_vec();
        data.extend_from_slice(&rows.to_be_bytes());
        Record {
            tag: Tag::Resize,
            elapsed_us,
            data,
        }
    }

    pub fn exit(elapsed_us: u64, ending: Ending) -> Self {
        let (kind, value) = match ending {
            Ending::Code(code) => (0u8, code),
            Ending::Signal(signal) => (1u8, signal),
        };
        let mut data = vec![kind];
        data.extend_from_slice(&value.to_be_bytes());
        Record {
            tag: Tag::Exit,
            elapsed_us,
            data,
        }
    }

    /// The ending an `Exit` record carries.
    pub fn ending(&self) -> Option<Ending> {
        if self.tag != Tag::Exit || self.data.len() != 5 {
            return None;
        }
        let value = i32::from_be_bytes(self.data[1..5].try_into().ok()?);
        match self.data[0] {
            0 => Some(Ending::Code(value)),
            1 => Some(Ending::Signal(value)),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self.tag, self.elapsed_us, &self.data)
    }

    pub fn encoded_len(&self) -> u64 {
        (RECORD_HEADER_LEN + self.data.len()) as u64
    }

    /// The first record in `bytes` and the bytes it took; `None` when `bytes` holds only a
    /// part of one. An unknown tag or a record too long is `InvalidData`.
    pub fn parse(bytes: &[u8]) -> io::Result<Option<(Record, usize)>> {
        let Some(header) = bytes.first_chunk::<RECORD_HEADER_LEN>() else {
            return Ok(None);
        };
        let tag = Tag::from_byte(header[0]).ok_or_else(|| invalid("an unknown record tag"))?;
        let elapsed_us = u64::from_be_bytes(header[1..9].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(header[9..13].try_into().unwrap_or_default()) as usize;
        if len > MAX_RECORD_PAYLOAD {
            return Err(invalid("a record longer than 64 KiB"));
        }
        let Some(data) = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
            return Ok(None);
        };
        let record = Record {
            tag,
            elapsed_us,
            data: data.to_vec(),
        };
        Ok(Some((record, RECORD_HEADER_LEN + len)))
    }
}

/// Reads records from a stream whose reads may time out, keeping what it has of a record
/// across them.
#[derive(Default)]
pub struct RecordReader {
    buffer: Vec<u8>,
}

impl RecordReader {
    /// The next record; `None` at the end of the stream. A timeout is returned as the error
    /// the read gave, and nothing read so far is lost.
    pub fn next(&mut self, stream: &mut impl Read) -> io::Result<Option<Record>> {
        loop {
            if let Some((record, used)) = Record::parse(&self.buffer)? {
                self.buffer.drain(..used);
                return Ok(Some(record));
            }
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk) {
                Ok(0) if self.buffer.is_empty() => return Ok(None),
                Ok(0) => return Err(invalid("a record cut short")),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The bytes of one record.
pub fn encode(tag: Tag, elapsed_us: u64, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(RECORD_HEADER_LEN + data.len());
    bytes.push(tag.byte());
    bytes.extend_from_slice(&elapsed_us.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_round_trip_one_after_another() {
        let records = [
            Record {
                tag: Tag::Output,
                elapsed_us: 12,
                data: b"$ ".to_vec(),
            },
            Record {
                tag: Tag::Input,
                elapsed_us: 900,
                data: b"ls\r".to_vec(),
            },
            Record::resize(1000, 132, 43),
            Record::exit(2000, Ending::Signal(9)),
        ];
        let bytes: Vec<u8> = records.iter().flat_map(Record::encode).collect();
        let mut stream = &bytes[..];
        let mut reader = RecordReader::default();
        for expected in &records {
            assert_eq!(reader.next(&mut stream).unwrap().as_ref(), Some(expected));
        }
        assert_eq!(reader.next(&mut stream).unwrap(), None);
        // Part of a record is not one yet.
        assert_eq!(Record::parse(&bytes[..14]).unwrap(), None);
        let (first, used) = Record::parse(&bytes).unwrap().unwrap();
        assert_eq!((first, used), (records[0].clone(), 15));
        assert_eq!(records[3].ending(), Some(Ending::Signal(9)));
        assert_eq!(
            Record::exit(0, Ending::Code(3)).ending(),
            Some(Ending::Code(3))
        );
    }

    #[test]
    fn a_cut_or_unknown_record_is_invalid() {
        let bytes = encode(Tag::Output, 1, b"hello");
        let mut cut = &bytes[..bytes.len() - 1];
        let error = RecordReader::default().next(&mut cut).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let mut unknown = bytes.clone();
        unknown[0] = 9;
        assert!(Record::parse(&unknown).is_err());
        let mut long = bytes;
        long[9..13].copy_from_slice(&(1u32 << 20).to_be_bytes());
        assert!(Record::parse(&long).is_err());
    }
}
