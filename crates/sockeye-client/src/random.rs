//! Unpredictable bytes for one connection: the handshake key and every mask key come from
//! ChaCha20, seeded from the operating system's CSPRNG when the connection starts (one
//! `getrandom` call per connection, none per frame).

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sockeye_proto::mask::MaskSource;

use crate::error::Error;

/// A connection's CSPRNG.
pub(crate) struct Random(ChaCha20Rng);

impl core::fmt::Debug for Random {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Random")
    }
}

impl Random {
    /// A generator seeded from the operating system.
    ///
    /// # Errors
    ///
    /// When the operating system has no randomness to give.
    pub(crate) fn from_os() -> Result<Self, Error> {
        ChaCha20Rng::try_from_os_rng()
            .map(Random)
            .map_err(|e| Error::Options(format!("no randomness from the operating system: {e}")))
    }

    /// The 16 bytes of a `Sec-WebSocket-Key`.
    pub(crate) fn nonce(&mut self) -> [u8; 16] {
        let mut nonce = [0u8; 16];
        self.0.fill_bytes(&mut nonce);
        nonce
    }
}

impl MaskSource for Random {
    fn next_key(&mut self) -> [u8; 4] {
        self.0.next_u32().to_ne_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_connections_draw_different_bytes() {
        let mut a = Random::from_os().expect("os randomness");
        let mut b = Random::from_os().expect("os randomness");
        assert_ne!(a.nonce(), b.nonce());
        let keys: Vec<[u8; 4]> = (0..64).map(|_| a.next_key()).collect();
        let other: Vec<[u8; 4]> = (0..64).map(|_| b.next_key()).collect();
        assert_ne!(keys, other);
        // 64 keys of 32 bits: a repeat would mean a broken generator, not bad luck.
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len());
    }
}
