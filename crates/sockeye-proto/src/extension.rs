//! The inline extension hook (RFC 6455 §9) and `Sec-WebSocket-Extensions` parsing.
//!
//! An [`Extension`] is negotiated during the upgrade and then sits inline on the data path of a
//! [`Connection`](crate::Connection): it claims RSV bits, decodes the payload of messages that
//! carry them (with an output limit, so a decompression bomb stops at the message size limit) and
//! encodes outgoing messages. Dispatch is static: with [`NoExtension`] the hook compiles away.

use core::fmt;

use crate::frame::Rsv;

/// An error from an extension's data path.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionError {
    /// The input is not valid for the extension (corrupt compressed data): close with 1007.
    InvalidData,
    /// Decoding would produce more than the output limit: close with 1009.
    OutputLimit {
        /// The limit that was reached.
        max: usize,
    },
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionError::InvalidData => f.write_str("extension data is invalid"),
            ExtensionError::OutputLimit { max } => {
                write!(f, "extension output over the limit of {max} bytes")
            }
        }
    }
}

impl std::error::Error for ExtensionError {}

/// An offer or a response that cannot be negotiated.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiationError {
    /// The header value does not follow the `Sec-WebSocket-Extensions` grammar.
    Malformed,
    /// A parameter the extension does not know.
    UnknownParameter,
    /// A parameter given twice.
    DuplicateParameter,
    /// A parameter with a value it does not allow.
    InvalidValue,
    /// A server response that accepts something the client did not offer.
    NotOffered,
    /// The response writer ran out of room.
    NoRoom,
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NegotiationError::Malformed => "malformed extension header",
            NegotiationError::UnknownParameter => "unknown extension parameter",
            NegotiationError::DuplicateParameter => "duplicate extension parameter",
            NegotiationError::InvalidValue => "invalid extension parameter value",
            NegotiationError::NotOffered => "extension response not matching the offer",
            NegotiationError::NoRoom => "extension response too long",
        })
    }
}

impl std::error::Error for NegotiationError {}

/// A WebSocket extension on the data path of a connection.
///
/// The server calls [`accept_offer`](Extension::accept_offer) for each offer of the client, in
/// order, until one is accepted; the client writes its offer with
/// [`write_offer`](Extension::write_offer) and checks the server's answer with
/// [`accept_response`](Extension::accept_response). Once negotiated, frames with the RSV bits of
/// [`rsv`](Extension::rsv) are handed to [`decode`](Extension::decode) as they arrive.
pub trait Extension {
    /// The registered name (`permessage-deflate`).
    fn name(&self) -> &str;

    /// The RSV bits this extension claims once negotiated ([`Rsv::NONE`] before).
    fn rsv(&self) -> Rsv;

    /// Server side: considers one offer; on acceptance writes the response parameters and
    /// returns `true`. Returning `false` declines this offer without failing the handshake.
    ///
    /// # Errors
    ///
    /// A [`NegotiationError`] when the offer is malformed; the server then declines it.
    fn accept_offer(
        &mut self,
        offer: &Params<'_>,
        response: &mut ParamWriter<'_>,
    ) -> Result<bool, NegotiationError>;

    /// Client side: writes the parameters of this extension's offer.
    ///
    /// # Errors
    ///
    /// [`NegotiationError::NoRoom`] when the writer is full.
    fn write_offer(&self, offer: &mut ParamWriter<'_>) -> Result<(), NegotiationError>;

    /// Client side: checks the parameters the server accepted and configures itself.
    ///
    /// # Errors
    ///
    /// A [`NegotiationError`] when the response is not one the offer allowed; the client must
    /// then fail the connection (RFC 6455 §4.1).
    fn accept_response(&mut self, params: &Params<'_>) -> Result<(), NegotiationError>;

    /// Decodes a piece of a message whose first frame carried this extension's RSV bits,
    /// appending to `out`; `fin` marks the last piece. `out` must not grow beyond `max_out`.
    ///
    /// # Errors
    ///
    /// [`ExtensionError::OutputLimit`] before `out` would exceed `max_out`;
    /// [`ExtensionError::InvalidData`] for input the extension cannot decode.
    fn decode(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), ExtensionError>;

    /// Encodes a whole outgoing message payload, appending to `out`. Returns the RSV bits for the
    /// frame; [`Rsv::NONE`] means the extension declined and wrote nothing, so the payload goes
    /// out as it is.
    ///
    /// # Errors
    ///
    /// An [`ExtensionError`] when encoding fails.
    fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Rsv, ExtensionError>;
}

/// The extension that is never negotiated: a connection without extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoExtension;

impl Extension for NoExtension {
    fn name(&self) -> &str {
        ""
    }

    #[inline(always)]
    fn rsv(&self) -> Rsv {
        Rsv::NONE
    }

    fn accept_offer(
        &mut self,
        _offer: &Params<'_>,
        _response: &mut ParamWriter<'_>,
    ) -> Result<bool, NegotiationError> {
        Ok(false)
    }

    fn write_offer(&self, _offer: &mut ParamWriter<'_>) -> Result<(), NegotiationError> {
        Ok(())
    }

    fn accept_response(&mut self, _params: &Params<'_>) -> Result<(), NegotiationError> {
        Err(NegotiationError::NotOffered)
    }

    #[inline(always)]
    fn decode(
        &mut self,
        _input: &[u8],
        _fin: bool,
        _out: &mut Vec<u8>,
        _max_out: usize,
    ) -> Result<(), ExtensionError> {
        // Unreachable in practice: no RSV bit is claimed, so no frame is routed here.
        Err(ExtensionError::InvalidData)
    }

    #[inline(always)]
    fn encode(&mut self, _input: &[u8], _out: &mut Vec<u8>) -> Result<Rsv, ExtensionError> {
        Ok(Rsv::NONE)
    }
}

/// An extension that may be absent: `None` behaves as [`NoExtension`], `Some` as the boxed
/// extension. A server that enables an extension for some connections only keeps one pointer
/// per connection instead of the whole extension state.
impl<E: Extension> Extension for Option<Box<E>> {
    fn name(&self) -> &str {
        self.as_deref().map_or(NoExtension.name(), E::name)
    }

    #[inline]
    fn rsv(&self) -> Rsv {
        self.as_deref().map_or(NoExtension.rsv(), E::rsv)
    }

    fn accept_offer(
        &mut self,
        offer: &Params<'_>,
        response: &mut ParamWriter<'_>,
    ) -> Result<bool, NegotiationError> {
        match self.as_deref_mut() {
            Some(ext) => ext.accept_offer(offer, response),
            None => NoExtension.accept_offer(offer, response),
        }
    }

    fn write_offer(&self, offer: &mut ParamWriter<'_>) -> Result<(), NegotiationError> {
        match self.as_deref() {
            Some(ext) => ext.write_offer(offer),
            None => NoExtension.write_offer(offer),
        }
    }

    fn accept_response(&mut self, params: &Params<'_>) -> Result<(), NegotiationError> {
        match self.as_deref_mut() {
            Some(ext) => ext.accept_response(params),
            None => NoExtension.accept_response(params),
        }
    }

    fn decode(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), ExtensionError> {
        match self.as_deref_mut() {
            Some(ext) => ext.decode(input, fin, out, max_out),
            None => NoExtension.decode(input, fin, out, max_out),
        }
    }

    #[inline]
    fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Rsv, ExtensionError> {
        match self.as_deref_mut() {
            Some(ext) => ext.encode(input, out),
            None => NoExtension.encode(input, out),
        }
    }
}

/// One offer (or response element) of a `Sec-WebSocket-Extensions` value: a name and its
/// parameters, borrowed from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    name: &'a str,
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// The extension name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The parameters as `(name, value)`; a quoted value is returned without its quotes.
    ///
    /// Each item is `Err(NegotiationError::Malformed)` for a parameter that breaks the grammar
    /// (RFC 6455 §9.1; a quoted value must be a token once unquoted, and escapes are refused).
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }
}

/// Iterator over the parameters of one offer.
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Result<(&'a str, Option<&'a str>), NegotiationError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.trim_matches(OWS).is_empty() {
            return None;
        }
        let (param, rest) = self.rest.split_once(';').unwrap_or((self.rest, ""));
        self.rest = rest;
        Some(parse_param(param))
    }
}

const OWS: &[char] = &[' ', '\t'];

fn parse_param(param: &str) -> Result<(&str, Option<&str>), NegotiationError> {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (name.trim_matches(OWS), Some(value.trim_matches(OWS))),
        None => (param.trim_matches(OWS), None),
    };
    if !is_token(name) {
        return Err(NegotiationError::Malformed);
    }
    let value = match value {
        None => None,
        Some(v) => {
            let v = match v.strip_prefix('"') {
                Some(quoted) => quoted
                    .strip_suffix('"')
                    .ok_or(NegotiationError::Malformed)?,
                None => v,
            };
            if !is_token(v) {
                return Err(NegotiationError::Malformed);
            }
            Some(v)
        }
    };
    Ok((name, value))
}

/// Whether `s` is a non-empty RFC 7230 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Splits one `Sec-WebSocket-Extensions` header value into its offers.
///
/// Commas inside quoted values are honoured. Each item is `Err(NegotiationError::Malformed)`
/// for an element without a valid name.
pub fn parse_offers(value: &str) -> Offers<'_> {
    Offers { rest: value }
}

/// Iterator over the offers in a `Sec-WebSocket-Extensions` value.
#[derive(Debug, Clone)]
pub struct Offers<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Offers<'a> {
    type Item = Result<Params<'a>, NegotiationError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = split_point(self.rest);
            let element = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            if element.trim_matches(OWS).is_empty() {
                continue; // empty list elements are allowed by the list grammar
            }
            let (name, raw) = element.split_once(';').unwrap_or((element, ""));
            let name = name.trim_matches(OWS);
            if !is_token(name) {
                return Some(Err(NegotiationError::Malformed));
            }
            return Some(Ok(Params { name, raw }));
        }
    }
}

/// The index of the first comma outside a quoted string, or the length.
fn split_point(s: &str) -> usize {
    let mut quoted = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => return i,
            _ => {}
        }
    }
    s.len()
}

/// Writes extension parameters (`; name` or `; name=value`) into a caller buffer, with no
/// allocation.
#[derive(Debug)]
pub struct ParamWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> ParamWriter<'a> {
    /// A writer over `buf`, empty.
    pub fn new(buf: &'a mut [u8]) -> Self {
        ParamWriter { buf, len: 0 }
    }

    /// Appends `; name`, or `; name=value` with a value.
    ///
    /// # Errors
    ///
    /// [`NegotiationError::NoRoom`] when the buffer is full (nothing is written then).
    pub fn param(&mut self, name: &str, value: Option<&str>) -> Result<(), NegotiationError> {
        let needed = 2 + name.len() + value.map_or(0, |v| 1 + v.len());
        if self.len + needed > self.buf.len() {
            return Err(NegotiationError::NoRoom);
        }
        self.push(b"; ");
        self.push(name.as_bytes());
        if let Some(value) = value {
            self.push(b"=");
            self.push(value.as_bytes());
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The length written so far, to [`rollback`](ParamWriter::rollback) to.
    pub fn checkpoint(&self) -> usize {
        self.len
    }

    /// Forgets what was written after `checkpoint`.
    pub fn rollback(&mut self, checkpoint: usize) {
        self.len = self.len.min(checkpoint);
    }

    /// What was written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer as owned strings: its name and its parameters.
    type OwnedOffer = (String, Vec<(String, Option<String>)>);

    fn collect(value: &str) -> Vec<Result<OwnedOffer, ()>> {
        parse_offers(value)
            .map(|offer| {
                let offer = offer.map_err(|_| ())?;
                let params = offer
                    .iter()
                    .map(|p| {
                        p.map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
                            .map_err(|_| ())
                    })
                    .collect::<Result<Vec<_>, ()>>()?;
                Ok((offer.name().to_owned(), params))
            })
            .collect()
    }

    #[test]
    fn offers_table() {
        let got = collect(
            "permessage-deflate; client_max_window_bits, permessage-deflate; \
             server_max_window_bits=\"10\" ;client_no_context_takeover, x-foo",
        );
        let expected = vec![
            Ok((
                "permessage-deflate".to_owned(),
                vec![("client_max_window_bits".to_owned(), None)],
            )),
            Ok((
                "permessage-deflate".to_owned(),
                vec![
                    ("server_max_window_bits".to_owned(), Some("10".to_owned())),
                    ("client_no_context_takeover".to_owned(), None),
                ],
            )),
            Ok(("x-foo".to_owned(), vec![])),
        ];
        assert_eq!(got, expected);
        assert_eq!(collect(" , ,"), vec![]);
        assert_eq!(
            collect("a; b=\"x,y\""),
            vec![Err(())],
            "quoted non-token refused"
        );
        assert_eq!(collect("a b"), vec![Err(())]);
        assert_eq!(collect("a; =3"), vec![Err(())]);
        assert_eq!(collect("a; b=\"3"), vec![Err(())]);
    }

    #[test]
    fn param_writer_bounds() {
        let mut buf = [0u8; 24];
        let mut w = ParamWriter::new(&mut buf);
        w.param("server_no_context_takeover", None).unwrap_err();
        assert!(w.is_empty());
        w.param("a", Some("15")).unwrap();
        let mark = w.checkpoint();
        w.param("b", None).unwrap();
        assert_eq!(w.as_bytes(), b"; a=15; b");
        w.rollback(mark);
        assert_eq!(w.as_bytes(), b"; a=15");
        w.param("b", None).unwrap();
        assert_eq!(w.as_bytes(), b"; a=15; b");
    }
}
