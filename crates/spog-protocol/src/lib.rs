//! The agent protocol of SPEC 12.3, shared by `spog-agent` and the hub: the JSON messages both
//! sides exchange over `GET /api/v1/agent/connect`, the binary frame that carries terminal
//! bytes, the enrollment bodies of `POST /api/v1/agent/enroll`, and the protocol's constants.
//! No I/O here: each side brings its own WebSocket.

mod duration;
mod enroll;
mod frame;
mod messages;

use std::time::Duration;

pub use duration::parse_duration;
pub use enroll::{EnrollRequest, EnrollResponse};
pub use frame::{FRAME_HEADER_LEN, Frame, FrameError, FrameKind, MAX_FRAME_PAYLOAD};
pub use messages::{
    AgentMessage, Capabilities, Facts, HubMessage, MessageError, MetricSample, OpenErrorCode,
    decode_message, encode_message, encode_metrics_message, encode_samples,
};

/// The WebSocket subprotocol of version 1.
pub const SUBPROTOCOL_V1: &str = "spog-agent.v1";
/// Every version this build speaks, newest first: the order an agent offers them in.
pub const SUBPROTOCOLS: &[&str] = &[SUBPROTOCOL_V1];

/// The path of the agent socket under the hub's base URL.
pub const CONNECT_PATH: &str = "/api/v1/agent/connect";
/// The path of enrollment under the hub's base URL.
pub const ENROLL_PATH: &str = "/api/v1/agent/enroll";

/// One message, text or binary, is at most this long; a larger one closes the socket (1009).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Both sides ping this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A connection that received nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// The agent's `hello` must arrive this soon after the upgrade.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Per channel and direction, at most this many bytes may be sent and not yet acknowledged
/// with `window`.
pub const CHANNEL_WINDOW_BYTES: u64 = 1 << 20;

/// WebSocket close codes with a meaning in this protocol.
pub mod close {
    /// The hub is shutting down: reconnect at once (jittered), to another instance if any.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_VIOLATION: u16 = 1008;
    /// A message exceeded [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The credential was refused (revoked, or the host deleted): enroll again.
    pub const CREDENTIAL_REFUSED: u16 = 4401;
    /// Another connection with the same credential replaced this one.
    pub const REPLACED: u16 = 4409;
}

/// Channels the hub opens are odd, the agent's (`spog-agent shell`) even.
pub fn opened_by_hub(channel: u32) -> bool {
    channel % 2 == 1
}
