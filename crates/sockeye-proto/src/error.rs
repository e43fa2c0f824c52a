use core::fmt;

use crate::close::CloseCode;

/// A violation of RFC 6455 by the peer (or a configured limit), which fails the connection.
///
/// Each error maps to the close code sent to the peer with [`ProtocolError::close_code`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A client frame without a mask, or a server frame with one (§5.1).
    MaskMismatch {
        /// Whether the offending frame was masked.
        masked: bool,
    },
    /// RSV bits set that no negotiated extension claimed (§5.2).
    ReservedBits(u8),
    /// An opcode reserved for future use (§5.2).
    ReservedOpCode(u8),
    /// A control frame with more than 125 bytes of payload (§5.5).
    ControlTooLong(u64),
    /// A control frame without FIN (§5.5).
    FragmentedControl,
    /// A 64-bit payload length with its most significant bit set (§5.2).
    LengthOverflow,
    /// A payload length not encoded in the minimal number of bytes (§5.2).
    NonMinimalLength,
    /// A continuation frame with no message to continue (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still open (§5.4).
    ExpectedContinuation,
    /// A close frame whose payload is one byte long (§5.5.1).
    CloseTooShort,
    /// A close code that must not appear on the wire (§7.4).
    InvalidCloseCode(u16),
    /// Text (or a close reason) that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A compressed frame that the extension could not decode.
    InvalidCompressedData,
    /// A frame whose payload exceeds the frame size limit.
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A message whose size exceeds the message size limit.
    MessageTooLarge {
        /// The size reached so far (or announced).
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A message split into more small fragments than the limit allows.
    TooManyFragments {
        /// The configured limit.
        max: u32,
    },
}

impl ProtocolError {
    /// The close code to send when this error fails the connection.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtocolError::MaskMismatch { masked: false } => f.write_str("unmasked client frame"),
            ProtocolError::MaskMismatch { masked: true } => f.write_str("masked server frame"),
            ProtocolError::ReservedBits(bits) => write!(f, "unnegotiated RSV bits {bits:#05b}"),
            ProtocolError::ReservedOpCode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ControlTooLong(len) => {
                write!(f, "control frame of {len} bytes (max 125)")
            }
            ProtocolError::FragmentedControl => f.write_str("fragmented control frame"),
            ProtocolError::LengthOverflow => f.write_str("64-bit length with the top bit set"),
            ProtocolError::NonMinimalLength => f.write_str("payload length not minimally encoded"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::CloseTooShort => f.write_str("close payload of one byte"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            ProtocolError::InvalidCompressedData => f.write_str("invalid compressed data"),
            ProtocolError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes over the limit of {max}")
            }
            ProtocolError::MessageTooLarge { len, max } => {
                write!(f, "message of {len} bytes over the limit of {max}")
            }
            ProtocolError::TooManyFragments { max } => {
                write!(f, "message in more than {max} small fragments")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}
