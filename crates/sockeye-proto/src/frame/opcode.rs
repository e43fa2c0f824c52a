use core::ops::BitOr;

/// A frame opcode (RFC 6455 §5.2); the reserved values are not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// `0x0`: a continuation of a fragmented message.
    Continuation = 0x0,
    /// `0x1`: the first frame of a text message.
    Text = 0x1,
    /// `0x2`: the first frame of a binary message.
    Binary = 0x2,
    /// `0x8`: a close control frame.
    Close = 0x8,
    /// `0x9`: a ping control frame.
    Ping = 0x9,
    /// `0xA`: a pong control frame.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, `None` for the reserved `0x3..=0x7` and `0xB..=0xF`.
    pub const fn from_u8(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Whether this is a control opcode (close, ping, pong): the most significant bit is set.
    pub const fn is_control(self) -> bool {
        self as u8 & 0x8 != 0
    }
}

/// The three RSV bits of a frame header, in their header positions (`0x40`, `0x20`, `0x10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rsv(u8);

impl Rsv {
    /// No RSV bit.
    pub const NONE: Rsv = Rsv(0);
    /// RSV1, claimed by permessage-deflate (RFC 7692 §6).
    pub const RSV1: Rsv = Rsv(0x40);
    /// RSV2.
    pub const RSV2: Rsv = Rsv(0x20);
    /// RSV3.
    pub const RSV3: Rsv = Rsv(0x10);

    /// The bits of the first header byte that are RSV bits.
    pub const fn from_header_byte(byte: u8) -> Rsv {
        Rsv(byte & 0x70)
    }

    /// The bits, in header position.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every bit of `self` is also in `allowed`.
    pub const fn is_subset_of(self, allowed: Rsv) -> bool {
        self.0 & !allowed.0 == 0
    }

    /// Whether `bit` is set.
    pub const fn contains(self, bit: Rsv) -> bool {
        self.0 & bit.0 == bit.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Rsv {
    type Output = Rsv;

    fn bitor(self, rhs: Rsv) -> Rsv {
        Rsv(self.0 | rhs.0)
    }
}
