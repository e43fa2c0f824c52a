//! The HTTP/1.1 head grammar shared by requests and responses (RFC 7230 §3).

use memchr::memchr;

use super::{HandshakeError, Limits, scan};
use crate::extension::is_tchar;
use crate::status::Status;

/// Bytes allowed in a field value: HTAB, SP, VCHAR and obs-text (RFC 7230 §3.2).
const fn value_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b == b'\t' as usize || (b >= 0x20 && b != 0x7f);
        b += 1;
    }
    table
}

static VALUE_BYTE: [bool; 256] = value_table();

const fn token_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_tchar(b as u8);
        b += 1;
    }
    table
}

static TOKEN_BYTE: [bool; 256] = token_table();

/// Finds the end of the line starting at `pos`: returns the line content (without CRLF) and the
/// position after it, or `Incomplete` when no LF has arrived yet.
pub(crate) fn next_line<'b>(
    buf: &'b [u8],
    pos: usize,
    limits: &Limits,
) -> Result<Status<(&'b [u8], usize)>, HandshakeError> {
    let rest = &buf[pos..];
    let Some(lf) = memchr(b'\n', rest) else {
        if buf.len() >= limits.max_head_len {
            return Err(HandshakeError::HeadTooLarge);
        }
        // A CR that is not the last byte received can only be a bare CR.
        if let Some(cr) = memchr(b'\r', rest) {
            if cr + 1 < rest.len() {
                return Err(HandshakeError::BareCr);
            }
        }
        return Ok(Status::incomplete(if rest.last() == Some(&b'\r') {
            1
        } else {
            2
        }));
    };
    let next = pos + lf + 1;
    if next > limits.max_head_len {
        return Err(HandshakeError::HeadTooLarge);
    }
    let Some((&b'\r', content)) = rest[..lf].split_last() else {
        return Err(HandshakeError::BareLf);
    };
    Ok(Status::Complete((content, next)))
}

/// The verdict on a head whose last line, from `pos`, has no LF yet: what [`next_line`] says of
/// it and, for a header line (`header`), what [`scan_headers`] says of its first bytes. When
/// every complete line before `pos` was accepted, the whole head gets this same verdict, so a
/// head that arrives in pieces is parsed again only when a line ends.
pub(crate) fn partial_line(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    header: bool,
) -> Result<(), HandshakeError> {
    let status = next_line(buf, pos, limits)?;
    debug_assert!(!status.is_complete(), "a partial line with an LF");
    if header {
        check_partial_header(&buf[pos..])?;
    }
    Ok(())
}

/// Scans header lines from `pos` up to and including the blank line, calling `on_header` with
/// each name and (OWS-trimmed) value. Returns the length of the whole head.
///
/// With `fast`, each line is first tried by [`clean_header`], one word-at-a-time pass over its
/// bytes; a line it declines (unclean, malformed or still arriving) goes through the bytewise
/// checks, which name the exact error. Both give the same answer for every line.
pub(crate) fn scan_headers<'b>(
    buf: &'b [u8],
    mut pos: usize,
    limits: &Limits,
    fast: bool,
    mut on_header: impl FnMut(&'b [u8], &'b [u8]) -> Result<(), HandshakeError>,
) -> Result<Status<usize>, HandshakeError> {
    let window = &buf[..buf.len().min(limits.max_head_len)];
    let mut count = 0usize;
    loop {
        if fast && window.get(pos..pos + 2) == Some(b"\r\n") {
            return Ok(Status::Complete(pos + 2));
        }
        let clean = if fast {
            clean_header(window, pos)
        } else {
            None
        };
        let (name, value) = match clean {
            Some((name, value, next)) => {
                pos = next;
                count = count_header(count, limits)?;
                (name, value)
            }
            None => {
                let (line, next) = match next_line(buf, pos, limits)? {
                    Status::Complete(found) => found,
                    Status::Incomplete { needed } => {
                        check_partial_header(&buf[pos..])?;
                        return Ok(Status::Incomplete { needed });
                    }
                };
                pos = next;
                if line.is_empty() {
                    return Ok(Status::Complete(pos));
                }
                count = count_header(count, limits)?;
                split_header(line)?
            }
        };
        on_header(name, value)?;
    }
}

/// One more header line; a line too many is 431 before it is even split.
fn count_header(count: usize, limits: &Limits) -> Result<usize, HandshakeError> {
    if count >= limits.max_headers {
        return Err(HandshakeError::TooManyHeaders);
    }
    Ok(count + 1)
}

/// The header line at `pos` as `(name, trimmed value, next line)`, when it is complete within
/// `window` and clean: `field-name ":" OWS field-value OWS CRLF` (RFC 7230 §3.2) with a token
/// name and only value bytes after the colon, the rules [`split_header`] quotes. `None`
/// declines the line, valid or not, to the bytewise checks.
// Inlined into the loop: the call and its returned tuple cost about a tenth of the scan.
#[inline(always)]
fn clean_header(window: &[u8], pos: usize) -> Option<(&[u8], &[u8], usize)> {
    // Any other byte that cannot be in a name fails `all_tokens`.
    let colon = scan::find(window, pos, scan::colon_or_lf)?;
    let name = &window[pos..colon];
    if window[colon] != b':' || name.is_empty() || !all_tokens(name) {
        return None;
    }
    let mut end = colon + 1;
    loop {
        end = scan::find(window, end, scan::ctl)?;
        match window.get(end..end + 2)? {
            b"\r\n" => break,
            [b'\t', _] => end += 1,
            _ => return None,
        }
    }
    Some((name, trim_ows(&window[colon + 1..end]), end + 2))
}

/// Whether every byte is a tchar, without a branch per byte.
fn all_tokens(s: &[u8]) -> bool {
    s.iter()
        .fold(true, |ok, &b| ok & TOKEN_BYTE[usize::from(b)])
}

/// Rejects a header line still arriving that can no longer become valid.
fn check_partial_header(partial: &[u8]) -> Result<(), HandshakeError> {
    // A trailing CR may be the start of the line ending.
    let partial = partial.strip_suffix(b"\r").unwrap_or(partial);
    if partial.is_empty() {
        return Ok(());
    }
    if memchr(b':', partial).is_some() {
        return split_header(partial).map(|_| ());
    }
    if matches!(partial[0], b' ' | b'\t') {
        return Err(HandshakeError::ObsFold);
    }
    match partial.iter().find(|&&b| !TOKEN_BYTE[usize::from(b)]) {
        None => Ok(()),
        Some(b'\r') => Err(HandshakeError::BareCr),
        Some(_) => Err(HandshakeError::MalformedHeader),
    }
}

/// Splits `name: value`, checking both.
fn split_header(line: &[u8]) -> Result<(&[u8], &[u8]), HandshakeError> {
    if matches!(line[0], b' ' | b'\t') {
        // "A server that receives an obs-fold in a request message ... MUST either reject the
        // message by sending a 400 (Bad Request)" (RFC 7230 §3.2.4).
        return Err(HandshakeError::ObsFold);
    }
    let name_len = line
        .iter()
        .take_while(|&&b| TOKEN_BYTE[usize::from(b)])
        .count();
    let (name, rest) = line.split_at(name_len);
    // "No whitespace is allowed between the header field-name and colon" (RFC 7230 §3.2.4).
    let Some((b':', value)) = rest.split_first() else {
        return Err(if rest.contains(&b'\r') {
            HandshakeError::BareCr
        } else {
            HandshakeError::MalformedHeader
        });
    };
    if name.is_empty() {
        return Err(HandshakeError::MalformedHeader);
    }
    if let Some(&bad) = value.iter().find(|&&b| !VALUE_BYTE[usize::from(b)]) {
        return Err(if bad == b'\r' {
            HandshakeError::BareCr
        } else {
            HandshakeError::MalformedHeader
        });
    }
    Ok((name, trim_ows(value)))
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses `HTTP/d.d`, returning (major, minor).
pub(crate) fn parse_version(v: &[u8]) -> Option<(u8, u8)> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some((major - b'0', minor - b'0'))
        }
        _ => None,
    }
}

/// Whether `b` is a tchar, by table.
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTE[usize::from(b)]
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_byte(b))
}

/// Whether a byte string is a valid field value (no CR, LF or other controls but HTAB).
pub(crate) fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| VALUE_BYTE[usize::from(b)])
}

/// The header lines of an already validated head, as `(name, value)`.
#[derive(Debug, Clone)]
pub struct Headers<'b> {
    rest: &'b [u8],
}

impl<'b> Headers<'b> {
    /// Headers over the validated header block (the lines after the start line).
    pub(crate) fn new(block: &'b [u8]) -> Self {
        Headers { rest: block }
    }
}

impl<'b> Iterator for Headers<'b> {
    type Item = (&'b str, &'b [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let lf = memchr(b'\n', self.rest)?;
            let line = &self.rest[..lf.saturating_sub(1)];
            self.rest = &self.rest[lf + 1..];
            let Some(colon) = memchr(b':', line) else {
                continue; // the blank line
            };
            // The block was validated: names are tokens, hence ASCII.
            let name = core::str::from_utf8(&line[..colon]).unwrap_or_default();
            return Some((name, trim_ows(&line[colon + 1..])));
        }
    }
}

/// The comma-separated tokens of every header line with one name, across repeated lines
/// (RFC 7230 §7): `Connection: keep-alive, Upgrade`. Empty elements are skipped.
#[derive(Debug, Clone)]
pub struct TokenList<'b> {
    headers: Headers<'b>,
    name: &'static str,
    current: &'b [u8],
}

impl<'b> TokenList<'b> {
    pub(crate) fn new(block: &'b [u8], name: &'static str) -> Self {
        TokenList {
            headers: Headers::new(block),
            name,
            current: &[],
        }
    }
}

impl<'b> Iterator for TokenList<'b> {
    type Item = &'b str;

    fn next(&mut self) -> Option<&'b str> {
        loop {
            if self.current.is_empty() {
                let name = self.name;
                let (_, value) = self
                    .headers
                    .by_ref()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
                self.current = value;
                continue;
            }
            let end = memchr(b',', self.current).unwrap_or(self.current.len());
            let item = trim_ows(&self.current[..end]);
            self.current = self.current.get(end + 1..).unwrap_or(&[]);
            if !item.is_empty() {
                // Values were validated; a non-UTF-8 (obs-text) element is skipped.
                if let Ok(item) = core::str::from_utf8(item) {
                    return Some(item);
                }
            }
        }
    }
}

/// Whether a comma-separated list value contains `token` (lowercase; see [`eq_folded`]).
#[inline]
pub(crate) fn list_contains(value: &[u8], token: &str) -> bool {
    // The common one-element list first.
    eq_folded(value, token.as_bytes())
        || value
            .split(|&b| b == b',')
            .any(|item| eq_folded(trim_ows(item), token.as_bytes()))
}

/// ASCII case-insensitive equality with `lower` (a-z, 0-9 and `-` only), without a branch per
/// byte.
///
/// `b | 0x20` folds A-Z onto a-z and leaves a-z, the digits and `-` alone; the only other bytes
/// it folds onto those are controls (CR onto `-`, 0x10..=0x19 onto the digits), which no header
/// name or value holds. So for names and values it is `eq_ignore_ascii_case`.
#[inline]
pub(crate) fn eq_folded(s: &[u8], lower: &[u8]) -> bool {
    s.len() == lower.len()
        && s.iter()
            .zip(lower)
            .fold(0, |diff, (&a, &b)| diff | ((a | 0x20) ^ b))
            == 0
}

/// Whether every element of a comma-separated list value is a token (empty ones allowed), in
/// one pass: each element is OWS, a token or nothing, OWS.
pub(crate) fn is_token_list(value: &[u8]) -> bool {
    // `gap`: whitespace has followed the element's token, so another tchar would split it.
    let (mut in_token, mut gap) = (false, false);
    for &b in value {
        if is_token_byte(b) && !gap {
            in_token = true;
        } else if b == b',' {
            (in_token, gap) = (false, false);
        } else if b == b' ' || b == b'\t' {
            gap = in_token;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive twin of [`is_token_list`]: split, trim, check each element.
    fn naive_token_list(value: &[u8]) -> bool {
        value.split(|&b| b == b',').all(|item| {
            let item = trim_ows(item);
            item.is_empty() || is_token(item)
        })
    }

    #[test]
    fn token_list_agrees_with_split_and_trim() {
        // Every string of up to five bytes over the bytes that matter.
        let alphabet = b"a, \t;\"";
        let mut value = Vec::new();
        for len in 0..=5u32 {
            for n in 0..alphabet.len().pow(len) {
                value.clear();
                let mut n = n;
                for _ in 0..len {
                    value.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                assert_eq!(is_token_list(&value), naive_token_list(&value), "{value:?}");
            }
        }
    }

    #[test]
    fn eq_folded_is_eq_ignore_ascii_case_on_header_bytes() {
        let names: &[&[u8]] = &[b"sec-websocket-version", b"upgrade", b"host", b"x-9"];
        // Every byte a header name or value can hold, at every place.
        let header_bytes = (0..=255u8).filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        for b in header_bytes {
            for lower in names {
                for at in 0..lower.len() {
                    for s in [lower.to_vec(), lower.to_ascii_uppercase()] {
                        let mut s = s;
                        s[at] = b;
                        let expected = s.eq_ignore_ascii_case(lower);
                        assert_eq!(eq_folded(&s, lower), expected, "{s:?}");
                    }
                }
                assert!(!eq_folded(&lower[1..], lower));
            }
        }
    }
}
