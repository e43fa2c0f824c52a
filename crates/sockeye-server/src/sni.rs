//! The server name a TLS client asks for (SNI, RFC 6066 §3), read from its ClientHello record:
//! rustls' unbuffered server connection chooses the certificate by it but does not tell it.
//! A reader over untrusted bytes: every length is checked, nothing panics.

/// What the first record says: `None` while it is incomplete; `Some(name)` once it is whole
/// (`Some(None)`: not a ClientHello in one record, or no host name in it).
pub(crate) fn client_hello_sni(record: &[u8]) -> Option<Option<Box<str>>> {
    // Record header: type (22, handshake), version (2), length (2).
    let (&[kind, _, _, hi, lo], rest) = record.split_first_chunk::<5>()?;
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let body = rest.get(..len)?;
    if kind != 22 {
        return Some(None);
    }
    Some(parse_hello(body).and_then(|name| {
        let name = std::str::from_utf8(name).ok()?;
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        valid.then(|| name.to_ascii_lowercase().into_boxed_str())
    }))
}

/// The host name in a ClientHello handshake message, if it is whole in `body`.
fn parse_hello(body: &[u8]) -> Option<&[u8]> {
    let mut r = Reader(body);
    // Handshake header: type 1 (ClientHello), length (3).
    if r.u8()? != 1 {
        return None;
    }
    let len = r.u24()?;
    let mut r = Reader(r.take(len)?);
    r.take(2 + 32)?; // legacy_version, random
    let session = usize::from(r.u8()?);
    r.take(session)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    let extensions = r.u16()?;
    let mut ext = Reader(r.take(extensions)?);
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let len = ext.u16()?;
        let data = ext.take(len)?;
        if kind == 0 {
            // server_name: list length, then (name_type, name) entries; 0 is host_name.
            let mut list = Reader(data);
            let list_len = list.u16()?;
            let mut names = Reader(list.take(list_len)?);
            while !names.0.is_empty() {
                let name_type = names.u8()?;
                let len = names.u16()?;
                let name = names.take(len)?;
                if name_type == 0 {
                    return Some(name);
                }
            }
            return None;
        }
    }
    None
}

/// Big-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A real ClientHello from rustls' client for `name`.
    fn hello(name: &str) -> Vec<u8> {
        let roots = rustls::RootCertStore::empty();
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::ring_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let server = name.to_owned().try_into().unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn the_name_of_a_real_client_hello() {
        let record = hello("Feed.Example.com");
        assert_eq!(
            client_hello_sni(&record),
            Some(Some("feed.example.com".into()))
        );
        for n in 0..record.len() {
            assert_eq!(
                client_hello_sni(&record[..n]),
                None,
                "{n} bytes: incomplete"
            );
        }
        // An IP address is sent without SNI.
        assert_eq!(client_hello_sni(&hello("192.0.2.1")), Some(None));
    }

    #[test]
    fn anything_else_yields_no_name_and_never_panics() {
        assert_eq!(
            client_hello_sni(&[23, 3, 3, 0, 1, 0]),
            Some(None),
            "not a handshake"
        );
        let mut record = hello("a.example");
        // Every byte of the hello altered in turn: a name or none, never a panic.
        for i in 5..record.len() {
            let kept = record[i];
            record[i] = kept ^ 0xff;
            let _ = client_hello_sni(&record);
            record[i] = kept;
        }
    }
}
