//! (Un)masking of payloads (RFC 6455 §5.3).
//!
//! `octet i of the transformed data is the XOR of octet i of the original data with octet at
//! index i modulo 4 of the masking key` (§5.3). [`apply_mask`] does that in place eight bytes at
//! a time (the compiler turns the fixed-width loop into vector instructions); [`extend_masked`]
//! does it while copying, for a payload on its way into another buffer; [`apply_mask_bytewise`]
//! is the naive twin of both, kept as the oracle for tests, fuzzing and benches.

/// XORs `buf` in place with `key`, as if `buf` started `offset` bytes into a masked payload.
///
/// Masking and unmasking are the same operation. `offset` lets a payload that arrives in
/// several reads be unmasked piece by piece.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let wide = doubled(key);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            let bytes: [u8; 8] = (&*word).try_into().unwrap_or([0; 8]);
            word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        let bytes: [u8; 8] = (&*word).try_into().unwrap_or([0; 8]);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // Every block above is a multiple of 4 bytes long, so the tail starts on key index 0.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// Appends `src` to `out` masked with `key`, as if `src` started `offset` bytes into a masked
/// payload: the copy and [`apply_mask`] in one pass over the bytes.
///
/// Copying and then masking in place reads and writes the payload twice; this reads it once
/// and writes it once (a 64 KiB payload in about half the time of the two passes).
#[inline]
pub fn extend_masked(out: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let wide = doubled(key);
    let words = src.chunks_exact(8);
    let tail = words.remainder();
    // Eight-byte arrays flattened from exact chunks have an exact length, so `extend` reserves
    // once and writes in a loop the compiler vectorises, with no capacity check per byte.
    out.extend(words.flat_map(|word| {
        let bytes: [u8; 8] = word.try_into().unwrap_or([0; 8]);
        (u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes()
    }));
    // The words are a multiple of 4 bytes long, so the tail starts on key index 0.
    out.extend(
        tail.iter()
            .zip(key.iter().cycle())
            .map(|(byte, k)| byte ^ k),
    );
}

/// The naive byte-at-a-time twin of [`apply_mask`]: the test and fuzz oracle.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(i + offset) % 4];
    }
}

/// The key twice, as one word in memory order on either endianness: eight bytes masked by one XOR.
#[inline]
fn doubled(key: [u8; 4]) -> u64 {
    let narrow = u64::from(u32::from_ne_bytes(key));
    narrow << 32 | narrow
}

fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut out = key;
    out.rotate_left(offset % 4);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_matches_bytewise_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..=200usize {
            for offset in 0..=7 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
                apply_mask(&mut fast, key, offset);
                assert_eq!(fast, data, "mask is an involution");
            }
        }
    }

    #[test]
    fn masked_copy_matches_bytewise_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..=200usize {
            for offset in 0..=7 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut slow = data.clone();
                apply_mask_bytewise(&mut slow, key, offset);
                // After bytes already in the buffer, which stay as they were.
                let mut out = vec![0xee; len % 5];
                extend_masked(&mut out, &data, key, offset);
                assert_eq!(&out[..len % 5], &vec![0xee; len % 5][..], "len {len}");
                assert_eq!(&out[len % 5..], &slow[..], "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn unaligned_subslices_and_split_application() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..=255u8).collect();
        for start in 0..8 {
            for split in [0usize, 1, 3, 5, 17, 100] {
                let mut whole = data[start..].to_vec();
                apply_mask_bytewise(&mut whole, key, 0);
                let mut parts = data[start..].to_vec();
                let split = split.min(parts.len());
                let (a, b) = parts.split_at_mut(split);
                apply_mask(a, key, 0);
                apply_mask(b, key, split);
                assert_eq!(parts, whole, "start {start} split {split}");
            }
        }
    }

    #[test]
    fn rfc_example_hello() {
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }
}

/// Where a client's mask keys come from: RFC 6455 §5.3 wants each one "derived from a strong
/// source of entropy" and unpredictable to the server and to whatever sits between, so that a
/// script cannot choose the bytes a proxy sees. This crate has no entropy of its own: a client
/// that talks to servers it does not control gives its connection a source backed by a CSPRNG
/// (`sockeye-client` seeds one from the operating system per connection).
pub trait MaskSource: Send {
    /// The key for the next frame.
    fn next_key(&mut self) -> [u8; 4];
}

impl core::fmt::Debug for dyn MaskSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MaskSource")
    }
}

/// Predictable mask keys from a seed (xorshift64*): for tests, fuzzing and load generators, where
/// the same seed must give the same bytes. Anyone who sees one key can compute the next, so a
/// client facing real networks uses a [`MaskSource`] on a CSPRNG instead.
#[derive(Debug, Clone)]
pub struct SeededMasks(u64);

impl SeededMasks {
    /// Keys from `seed` (any value: zero is mapped to a valid state).
    pub fn new(seed: u64) -> Self {
        SeededMasks(seed | 1)
    }
}

impl MaskSource for SeededMasks {
    fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let key = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32;
        key.to_ne_bytes()
    }
}
