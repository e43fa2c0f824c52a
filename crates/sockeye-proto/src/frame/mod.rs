//! Frame headers (RFC 6455 §5.2): decoding, encoding and the per-frame rules.
//!
//! ```text
//!   0                   1                   2                   3
//!  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//!  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//!  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//!  | |1|2|3|       |K|             |                               |
//!  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//!  |     Extended payload length continued, if payload len == 127  |
//!  + - - - - - - - - - - - - - - - +-------------------------------+
//!  |                               | Masking-key, if MASK set to 1 |
//!  +-------------------------------+-------------------------------+
//! ```

mod header;
mod opcode;

pub use header::{FrameHeader, MAX_HEADER_LEN};
pub use opcode::{OpCode, Rsv};
