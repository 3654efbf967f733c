//! The binary message that carries terminal bytes:
//! `channel` (u32 BE) · `kind` (u8) · `elapsed_us` (u64 BE) · 1 to 65,536 bytes.

use std::fmt;

/// `channel` + `kind` + `elapsed_us`.
pub const FRAME_HEADER_LEN: usize = 4 + 1 + 8;
/// The most bytes one frame carries.
pub const MAX_FRAME_PAYLOAD: usize = 65_536;

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Written by the PTY.
    Output = 0,
    /// Going into the PTY.
    Input = 1,
}

/// One binary message, borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub channel: u32,
    pub kind: FrameKind,
    /// Microseconds since the channel opened, stamped by the side nearer the keyboard or PTY.
    pub elapsed_us: u64,
    pub data: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than the header.
    Truncated {
        len: usize,
    },
    /// A frame carries at least one byte.
    Empty,
    /// More than `MAX_FRAME_PAYLOAD` bytes.
    TooLarge {
        len: usize,
    },
    UnknownKind(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated { len } => {
                write!(
                    f,
                    "frame of {len} bytes is shorter than its {FRAME_HEADER_LEN}-byte header"
                )
            }
            FrameError::Empty => f.write_str("frame carries no bytes"),
            FrameError::TooLarge { len } => {
                write!(
                    f,
                    "frame carries {len} bytes, more than {MAX_FRAME_PAYLOAD}"
                )
            }
            FrameError::UnknownKind(kind) => write!(f, "unknown frame kind {kind}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl<'a> Frame<'a> {
    /// Reads a frame from a binary message.
    pub fn decode(message: &'a [u8]) -> Result<Self, FrameError> {
        let (header, data) = message
            .split_first_chunk::<FRAME_HEADER_LEN>()
            .ok_or(FrameError::Truncated { len: message.len() })?;
        check_payload(data.len())?;
        let kind = match header[4] {
            0 => FrameKind::Output,
            1 => FrameKind::Input,
            other => return Err(FrameError::UnknownKind(other)),
        };
        let mut channel = [0u8; 4];
        channel.copy_from_slice(&header[..4]);
        let mut elapsed = [0u8; 8];
        elapsed.copy_from_slice(&header[5..]);
        Ok(Frame {
            channel: u32::from_be_bytes(channel),
            kind,
            elapsed_us: u64::from_be_bytes(elapsed),
            data,
        })
    }

    /// The binary message of this frame.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        check_payload(self.data.len())?;
        let mut message = Vec::with_capacity(FRAME_HEADER_LEN + self.data.len());
        message.extend_from_slice(&self.channel.to_be_bytes());
        message.push(self.kind as u8);
        message.extend_from_slice(&self.elapsed_us.to_be_bytes());
        message.extend_from_slice(self.data);
        Ok(message)
    }
}

fn check_payload(len: usize) -> Result<(), FrameError> {
    match len {
        0 => Err(FrameError::Empty),
        len if len > MAX_FRAME_PAYLOAD => Err(FrameError::TooLarge { len }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_survives_the_round_trip_with_its_big_endian_header() {
        let frame = Frame {
            channel: 0x0102_0304,
            kind: FrameKind::Input,
            elapsed_us: 0x0A0B_0C0D_0E0F_1011,
            data: b"ls -l\r",
        };
        let message = frame.encode().unwrap();
        assert_eq!(
            &message[..FRAME_HEADER_LEN],
            &[
                1, 2, 3, 4, 1, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11
            ]
        );
        assert_eq!(&message[FRAME_HEADER_LEN..], b"ls -l\r");
        assert_eq!(Frame::decode(&message), Ok(frame));
    }

    #[test]
    fn a_frame_carries_one_to_65536_bytes() {
        let full = vec![7u8; MAX_FRAME_PAYLOAD];
        let frame = Frame {
            channel: 1,
            kind: FrameKind::Output,
            elapsed_us: 0,
            data: &full,
        };
        let message = frame.encode().unwrap();
        assert_eq!(message.len(), FRAME_HEADER_LEN + MAX_FRAME_PAYLOAD);
        assert_eq!(
            Frame::decode(&message).unwrap().data.len(),
            MAX_FRAME_PAYLOAD
        );

        let over = vec![7u8; MAX_FRAME_PAYLOAD + 1];
        let too_large = Frame {
            data: &over,
            ..frame
        };
        assert_eq!(
            too_large.encode(),
            Err(FrameError::TooLarge { len: 65_537 })
        );
        let mut message = message;
        message.push(7);
        assert_eq!(
            Frame::decode(&message),
            Err(FrameError::TooLarge { len: 65_537 })
        );

        let empty = Frame { data: b"", ..frame };
        assert_eq!(empty.encode(), Err(FrameError::Empty));
        assert_eq!(
            Frame::decode(&message[..FRAME_HEADER_LEN]),
            Err(FrameError::Empty)
        );
    }

    #[test]
    fn a_short_message_or_an_unknown_kind_is_refused() {
        assert_eq!(
            Frame::decode(&[0, 0, 0, 1]),
            Err(FrameError::Truncated { len: 4 })
        );
        let mut message = Frame {
            channel: 2,
            kind: FrameKind::Output,
            elapsed_us: 5,
            data: b"x",
        }
        .encode()
        .unwrap();
        message[4] = 9;
        assert_eq!(Frame::decode(&message), Err(FrameError::UnknownKind(9)));
    }
}
