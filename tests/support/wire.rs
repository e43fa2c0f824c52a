//! A small frame encoder for tests, built only on the public header codec and masking, so the
//! bytes it writes do not depend on the connection code under test.

use sockeye_proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, Rsv};
use sockeye_proto::mask::apply_mask;

/// The mask key of the RFC 6455 §5.7 examples.
pub const RFC_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Appends one frame to `out`; the payload is masked with `mask` when it is set.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin,
        rsv: Rsv::NONE,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let mut bytes = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut bytes);
    out.extend_from_slice(&bytes[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// One frame as a new vector.
pub fn frame(fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, mask);
    out
}

/// One frame as a client sends it (masked with [`RFC_KEY`]).
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, payload, Some(RFC_KEY))
}

/// A masked client frame whose first header byte is `first_byte` verbatim (FIN, RSV bits and any
/// opcode, reserved ones included), for frames the typed encoder cannot express.
pub fn raw_client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = client_frame(true, OpCode::Binary, payload);
    out[0] = first_byte;
    out
}

/// A close frame payload: the code, big-endian, then the reason bytes.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// Concatenates frames into one byte stream.
pub fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}
