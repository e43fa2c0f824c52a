use crate::Role;
use crate::error::ProtocolError;
use crate::frame::{OpCode, Rsv};
use crate::status::Status;

/// The longest frame header: 2 bytes, 8 bytes of length, 4 bytes of mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (§5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whether this is the final fragment of a message.
    pub fin: bool,
    /// The RSV bits that are set.
    pub rsv: Rsv,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`, checking every rule that a single header can
    /// break, for a frame received by an endpoint of role `receiver` with the RSV bits in
    /// `allowed_rsv` claimed by negotiated extensions.
    ///
    /// Returns the header and its length in bytes (2 to 14).
    ///
    /// # Errors
    ///
    /// The [`ProtocolError`] of the first rule broken; a prefix that breaks a rule is an error
    /// even before the whole header has arrived.
    pub fn decode(
        buf: &[u8],
        receiver: Role,
        allowed_rsv: Rsv,
    ) -> Result<Status<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return match buf {
                [b0] => check_first_byte(*b0, allowed_rsv).map(|_| Status::incomplete(1)),
                _ => Ok(Status::incomplete(2)),
            };
        };
        let (fin, rsv, opcode) = check_first_byte(*b0, allowed_rsv)?;
        let masked = b1 & 0x80 != 0;
        // "All frames sent from client to server have this bit set to 1" (§5.2); "A server MUST
        // NOT mask any frames that it sends to the client" (§5.1).
        if masked != (receiver == Role::Server) {
            return Err(ProtocolError::MaskMismatch { masked });
        }
        let short = u64::from(b1 & 0x7f);
        if opcode.is_control() && short > MAX_CONTROL_PAYLOAD {
            // "All control frames MUST have a payload length of 125 bytes or less" (§5.5).
            return Err(ProtocolError::ControlTooLong(short));
        }
        let (payload_len, len_bytes) = match short {
            126 => {
                let Some(ext) = rest.first_chunk::<2>() else {
                    return Ok(Status::incomplete(2 - rest.len()));
                };
                let len = u64::from(u16::from_be_bytes(*ext));
                // "the minimal number of bytes MUST be used to encode the length" (§5.2).
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 2)
            }
            127 => {
                if let Some(&first) = rest.first() {
                    // "the most significant bit MUST be 0" (§5.2).
                    if first & 0x80 != 0 {
                        return Err(ProtocolError::LengthOverflow);
                    }
                }
                let Some(ext) = rest.first_chunk::<8>() else {
                    return Ok(Status::incomplete(8 - rest.len()));
                };
                let len = u64::from_be_bytes(*ext);
                if len <= u64::from(u16::MAX) {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 8)
            }
            len => (len, 0),
        };
        let rest = &rest[len_bytes..];
        let mask = if masked {
            let Some(key) = rest.first_chunk::<4>() else {
                return Ok(Status::incomplete(4 - rest.len()));
            };
            Some(*key)
        } else {
            None
        };
        let len = 2 + len_bytes + if masked { 4 } else { 0 };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Status::Complete((header, len)))
    }

    /// The encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes this header into `out`, returning the number of bytes written.
    ///
    /// The length is always minimally encoded. A payload length with the top bit set (which no
    /// real payload has) is written with that bit cleared.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = u8::from(self.fin) << 7 | self.rsv.bits() | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&(len & (u64::MAX >> 1)).to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

fn check_first_byte(b0: u8, allowed_rsv: Rsv) -> Result<(bool, Rsv, OpCode), ProtocolError> {
    let fin = b0 & 0x80 != 0;
    let rsv = Rsv::from_header_byte(b0);
    // "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values"
    // (§5.2).
    if !rsv.is_subset_of(allowed_rsv) {
        return Err(ProtocolError::ReservedBits(rsv.bits() >> 4));
    }
    let Some(opcode) = OpCode::from_u8(b0 & 0x0f) else {
        // "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
        // Connection_" (§5.2).
        return Err(ProtocolError::ReservedOpCode(b0 & 0x0f));
    };
    // "Control frames themselves MUST NOT be fragmented" (§5.5).
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControl);
    }
    Ok((fin, rsv, opcode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(buf: &[u8], role: Role) -> Result<Status<(FrameHeader, usize)>, ProtocolError> {
        FrameHeader::decode(buf, role, Rsv::NONE)
    }

    #[test]
    fn rule_table() {
        use ProtocolError::*;
        let table: &[(&[u8], Role, Result<(), ProtocolError>)] = &[
            (&[0x81, 0x05], Role::Client, Ok(())),
            (&[0x81, 0x85, 1, 2, 3, 4], Role::Server, Ok(())),
            (
                &[0x81, 0x05],
                Role::Server,
                Err(MaskMismatch { masked: false }),
            ),
            (
                &[0x81, 0x85, 1, 2, 3, 4],
                Role::Client,
                Err(MaskMismatch { masked: true }),
            ),
            (&[0xc1, 0x85], Role::Server, Err(ReservedBits(0b100))),
            (&[0xa1, 0x85], Role::Server, Err(ReservedBits(0b010))),
            (&[0x91, 0x85], Role::Server, Err(ReservedBits(0b001))),
            (&[0x83, 0x80], Role::Server, Err(ReservedOpCode(3))),
            (&[0x8b, 0x80], Role::Server, Err(ReservedOpCode(0xb))),
            (&[0x8f], Role::Server, Err(ReservedOpCode(0xf))),
            (&[0x09, 0x80], Role::Server, Err(FragmentedControl)),
            (&[0x89, 0xfe], Role::Server, Err(ControlTooLong(126))),
            (
                &[0x88, 0xfe, 0x00, 0x7e],
                Role::Server,
                Err(ControlTooLong(126)),
            ),
            (&[0x82, 0xff, 0x80], Role::Server, Err(LengthOverflow)),
            (
                &[0x82, 0xfe, 0x00, 0x7d, 1, 2, 3, 4],
                Role::Server,
                Err(NonMinimalLength),
            ),
            (
                &[0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4],
                Role::Server,
                Err(NonMinimalLength),
            ),
        ];
        for (bytes, role, expected) in table {
            let got = decode(bytes, *role).map(|_| ());
            assert_eq!(&got, expected, "{bytes:02x?} as {role:?}");
        }
    }

    #[test]
    fn lengths_decode_and_round_trip() {
        for len in [
            0u64,
            1,
            125,
            126,
            127,
            0xffff,
            0x1_0000,
            1 << 40,
            u64::MAX >> 1,
        ] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let header = FrameHeader {
                    fin: len % 2 == 0,
                    rsv: Rsv::NONE,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut out = [0; MAX_HEADER_LEN];
                let n = header.encode(&mut out);
                assert_eq!(n, header.encoded_len());
                let role = if mask.is_some() {
                    Role::Server
                } else {
                    Role::Client
                };
                assert_eq!(decode(&out[..n], role), Ok(Status::Complete((header, n))));
                for cut in 0..n {
                    assert!(
                        matches!(decode(&out[..cut], role), Ok(Status::Incomplete { .. })),
                        "prefix {cut} of {n} for len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn rsv_allowed_when_claimed() {
        let got = FrameHeader::decode(&[0xc1, 0x80, 0, 0, 0, 0], Role::Server, Rsv::RSV1);
        let (header, _) = got.unwrap().complete().unwrap();
        assert_eq!(header.rsv, Rsv::RSV1);
    }
}
