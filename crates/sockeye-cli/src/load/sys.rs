//! What the load generator asks of the operating system beyond sockets: entropy for handshake
//! keys and mask seeds, and the file-descriptor limit.

use std::fs::File;
use std::io::{self, BufReader, Read};

/// Bytes from `/dev/urandom`, read through one buffered handle per thread.
#[derive(Debug)]
pub(super) struct Entropy {
    file: BufReader<File>,
}

impl Entropy {
    /// Opens `/dev/urandom`.
    ///
    /// # Errors
    ///
    /// When the device cannot be opened.
    pub(super) fn open() -> io::Result<Self> {
        let file = File::open("/dev/urandom")
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/urandom: {e}")))?;
        Ok(Entropy {
            file: BufReader::new(file),
        })
    }

    /// Fills `buf` with random bytes.
    ///
    /// # Errors
    ///
    /// When the device cannot be read.
    pub(super) fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.file
            .read_exact(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read /dev/urandom: {e}")))
    }

    /// A random `u64`.
    ///
    /// # Errors
    ///
    /// When the device cannot be read.
    pub(super) fn next_u64(&mut self) -> io::Result<u64> {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

/// The splitmix64 generator: a fast, well-mixed stream from one seed (used for payload filler,
/// never for mask keys or handshake nonces).
pub(super) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Checks that the soft `RLIMIT_NOFILE` allows `needed` descriptors, reading `/proc/self/limits`
/// (the check is skipped where that file does not exist).
///
/// # Errors
///
/// A message saying how to raise the limit with `ulimit -n`.
pub(super) fn check_fd_limit(needed: u64) -> Result<(), String> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(());
    };
    let Some((soft, hard)) = parse_nofile(&limits) else {
        return Ok(());
    };
    if soft.is_none_or(|soft| soft >= needed) {
        return Ok(());
    }
    let soft = soft.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let hard = hard.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    Err(format!(
        "this run needs {needed} file descriptors (connections + 64) but the open-files limit is \
         {soft} (hard limit {hard}); raise it in this shell with `ulimit -n {needed}` (up to the \
         hard limit), or use fewer --connections"
    ))
}

/// The soft and hard "Max open files" from `/proc/self/limits` (`None` inside means unlimited).
fn parse_nofile(limits: &str) -> Option<(Option<u64>, Option<u64>)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let mut value = || match fields.next()? {
        "unlimited" => Some(None),
        n => n.parse().ok().map(Some),
    };
    Some((value()?, value()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_line() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max processes             63704                63704                processes\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_nofile(text), Some((Some(1024), Some(524_288))));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(text), Some((None, None)));
        assert_eq!(parse_nofile("nothing"), None);
    }

    #[test]
    fn splitmix_is_deterministic_and_mixes() {
        let (mut a, mut b) = (1, 1);
        assert_eq!(splitmix64(&mut a), splitmix64(&mut b));
        assert_ne!(splitmix64(&mut a), splitmix64(&mut a));
    }
}
