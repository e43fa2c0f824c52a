//! Command-line quantities of `sockeye load`: message sizes (`16`, `4KiB`, `1MiB`) and seconds
//! (`10`, `2.5`).

use std::time::Duration;

/// The largest payload `--size` accepts: 1 GiB.
const MAX_SIZE: u64 = 1 << 30;

/// The longest `--duration`, `--warmup` or `--hold`: one day.
const MAX_SECONDS: f64 = 86_400.0;

/// Parses a message size like `sockeye serve` does (`16`, `4KiB`, `1MiB`; see
/// `crate::size`), capped at 1 GiB.
///
/// # Errors
///
/// A message for something that is not a size, or a size over 1 GiB.
pub(super) fn parse_size(text: &str) -> Result<usize, String> {
    let size = crate::size::parse_size(text)?;
    if size as u64 > MAX_SIZE {
        return Err(format!("`{}` is over the 1 GiB limit", text.trim()));
    }
    Ok(size)
}

/// Parses seconds, decimals allowed, with an optional `s` suffix: `10`, `2.5`, `0.5s`.
///
/// # Errors
///
/// A message for something that is not a number, negative, or over a day.
pub(super) fn parse_seconds(text: &str) -> Result<Duration, String> {
    let number = text.trim().strip_suffix('s').unwrap_or(text.trim());
    match number.parse::<f64>() {
        Ok(secs) if (0.0..=MAX_SECONDS).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err(format!("`{text}` is out of range (0 to 86400 seconds)")),
        Err(_) => Err(format!("`{text}` is not a number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let table = [
            ("0", Ok(0)),
            ("16", Ok(16)),
            ("16B", Ok(16)),
            ("4KiB", Ok(4096)),
            ("4k", Ok(4096)),
            ("4KB", Ok(4096)),
            ("1MiB", Ok(1 << 20)),
            ("2 mib", Ok(2 << 20)),
            ("1GiB", Ok(1 << 30)),
        ];
        for (text, expected) in table {
            assert_eq!(parse_size(text), expected, "{text}");
        }
        for bad in ["", "KiB", "4x", "2GiB", "-1", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for bad in ["", "-1", "x", "NaN", "inf", "100000"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
