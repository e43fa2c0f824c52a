//! The HTTP/1.1 head grammar shared by requests and responses (RFC 7230 §3).

use memchr::{memchr, memchr_iter, memmem};

use super::{HandshakeError, Limits};
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

/// Scans header lines from `pos` up to and including the blank line, calling `on_header` with
/// each name and (OWS-trimmed) value. Returns the length of the whole head.
pub(crate) fn scan_headers<'b>(
    buf: &'b [u8],
    mut pos: usize,
    limits: &Limits,
    mut on_header: impl FnMut(&'b [u8], &'b [u8]) -> Result<(), HandshakeError>,
) -> Result<Status<usize>, HandshakeError> {
    let mut count = 0usize;
    loop {
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
        count += 1;
        if count > limits.max_headers {
            return Err(HandshakeError::TooManyHeaders);
        }
        let (name, value) = split_header(line, true)?;
        on_header(name, value)?;
    }
}

/// Rejects a header line still arriving that can no longer become valid.
fn check_partial_header(partial: &[u8]) -> Result<(), HandshakeError> {
    // A trailing CR may be the start of the line ending.
    let partial = partial.strip_suffix(b"\r").unwrap_or(partial);
    if partial.is_empty() {
        return Ok(());
    }
    if memchr(b':', partial).is_some() {
        return split_header(partial, true).map(|_| ());
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

/// Splits `name: value`, checking the name (and the value unless the caller has checked every
/// byte of the head already).
fn split_header(line: &[u8], check_value: bool) -> Result<(&[u8], &[u8]), HandshakeError> {
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
    if !check_value {
        return Ok((name, trim_ows(value)));
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

/// The fast path: the length of a complete head at the start of `buf`, within the size limit,
/// whose every byte is allowed where it stands (no controls but HTAB, every CR followed by LF,
/// every LF preceded by CR). `None` sends the caller to the line-by-line path, which waits for
/// more bytes or names the exact error.
pub(crate) fn clean_head(buf: &[u8], limits: &Limits) -> Option<usize> {
    let window = &buf[..buf.len().min(limits.max_head_len)];
    let end = memmem::find(window, b"\r\n\r\n")? + 4;
    let head = &buf[..end];
    // One branch-free pass over adjacent pairs (the compiler vectorises it): a control byte
    // other than HTAB, CR, LF, or a CR and an LF that are not a CRLF pair, marks the head
    // unclean. `(a is CR) == (b is LF)` for every pair leaves neither a bare CR nor a bare LF.
    let ctl = |b: u8| ((b < 0x20) & (b != b'\t') & (b != b'\r') & (b != b'\n')) | (b == 0x7f);
    let unclean = head.iter().zip(&head[1..]).fold(false, |acc, (&a, &b)| {
        acc | ((a == b'\r') ^ (b == b'\n')) | ctl(b)
    });
    let clean = !unclean && !ctl(head[0]) && head[0] != b'\n';
    clean.then_some(end)
}

/// Scans the header lines of a head that [`clean_head`] accepted, from `start` (after the
/// request line) to the blank line.
pub(crate) fn scan_clean_headers<'b>(
    head: &'b [u8],
    start: usize,
    limits: &Limits,
    mut on_header: impl FnMut(&'b [u8], &'b [u8]) -> Result<(), HandshakeError>,
) -> Result<(), HandshakeError> {
    let mut pos = start;
    let mut count = 0usize;
    for lf in memchr_iter(b'\n', &head[start..]) {
        let end = start + lf;
        let line = &head[pos..end - 1];
        pos = end + 1;
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > limits.max_headers {
            return Err(HandshakeError::TooManyHeaders);
        }
        let (name, value) = split_header(line, false)?;
        on_header(name, value)?;
    }
    Ok(())
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

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TOKEN_BYTE[usize::from(b)])
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

/// Whether a comma-separated list value contains `token` (ASCII case-insensitive).
pub(crate) fn list_contains(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether every element of a comma-separated list value is a token (empty ones allowed).
pub(crate) fn is_token_list(value: &[u8]) -> bool {
    value.split(|&b| b == b',').all(|item| {
        let item = trim_ows(item);
        item.is_empty() || is_token(item)
    })
}
