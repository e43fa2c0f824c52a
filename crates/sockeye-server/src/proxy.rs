//! The client's address behind a proxy: the PROXY protocol header a load balancer puts in front
//! of the stream (versions 1 and 2), and the `Forwarded` / `X-Forwarded-For` headers of
//! trusted HTTP proxies. Pure functions over bytes, like the upgrade scanner: "need more" is
//! `Ok(None)`, nothing is consumed until the header is whole.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The signature that starts a version 2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A version 1 header is at most this long, CRLF included.
const V1_MAX: usize = 107;

/// The most bytes of a version 2 header taken (addresses and TLVs included): a bound on what an
/// unfinished header makes a connection hold.
const V2_MAX: usize = 4096;

/// Why a PROXY header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyError;

/// A whole PROXY header: its length, and the client's address (`None` for `UNKNOWN`, a
/// `LOCAL` command or an address family other than TCP over IPv4 or IPv6: then the socket's
/// address stands).
pub(crate) type Proxied = (usize, Option<SocketAddr>);

/// Parses the PROXY header at the start of `buf`; `Ok(None)` while it is incomplete.
///
/// # Errors
///
/// [`ProxyError`] as soon as `buf` cannot start a valid header of either version.
pub(crate) fn parse_proxy(buf: &[u8]) -> Result<Option<Proxied>, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(6);
    if buf[..n] != b"PROXY "[..n] {
        return Err(ProxyError);
    }
    parse_v1(buf)
}

/// `PROXY TCP4 SRC DST SPORT DPORT\r\n`, `PROXY TCP6 ...` or `PROXY UNKNOWN ...\r\n`.
fn parse_v1(buf: &[u8]) -> Result<Option<Proxied>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError)
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError)?;
    let mut parts = line.split(' ');
    let (Some("PROXY"), Some(family)) = (parts.next(), parts.next()) else {
        return Err(ProxyError);
    };
    if family == "UNKNOWN" {
        return Ok(Some((end + 2, None)));
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(ProxyError);
    };
    let ip: IpAddr = match family {
        "TCP4" => IpAddr::V4(src.parse().map_err(|_| ProxyError)?),
        "TCP6" => IpAddr::V6(src.parse().map_err(|_| ProxyError)?),
        _ => return Err(ProxyError),
    };
    let port: u16 = sport.parse().map_err(|_| ProxyError)?;
    Ok(Some((end + 2, Some(SocketAddr::new(ip, port)))))
}

/// The binary version 2: signature, version and command, family, length, addresses, TLVs.
fn parse_v2(buf: &[u8]) -> Result<Option<Proxied>, ProxyError> {
    let Some(&[ver_cmd, family, hi, lo]) = buf.get(12..16) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Err(ProxyError);
    }
    let total = 16 + usize::from(u16::from_be_bytes([hi, lo]));
    if total > V2_MAX {
        return Err(ProxyError);
    }
    let Some(body) = buf.get(16..total) else {
        return Ok(None);
    };
    if ver_cmd & 0x0f == 0 {
        // LOCAL: the proxy's own connection (a health check); the socket's address stands.
        return Ok(Some((total, None)));
    }
    let addr = match family {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            let b = body.get(..12).ok_or(ProxyError)?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([b[8], b[9]])))
        }
        0x21 => {
            let b = body.get(..36).ok_or(ProxyError)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([b[32], b[33]]),
            ))
        }
        _ => None,
    };
    Ok(Some((total, addr)))
}

/// The client's address from a trusted proxy's headers: the right-most address of the
/// `Forwarded` `for=` parameters (or, without `Forwarded`, of `X-Forwarded-For`) that is not
/// itself a trusted proxy. `None` when the headers name no such address.
pub(crate) fn forwarded_for<'h>(
    forwarded: impl Iterator<Item = &'h [u8]> + Clone,
    x_forwarded_for: impl Iterator<Item = &'h [u8]>,
    trusted: &[IpAddr],
) -> Option<SocketAddr> {
    let mut hops: Vec<SocketAddr> = Vec::new();
    for value in forwarded.clone() {
        let text = std::str::from_utf8(value).ok()?;
        for element in text.split(',') {
            for pair in element.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("for") {
                    hops.extend(parse_node(value.trim().trim_matches('"')));
                }
            }
        }
    }
    if forwarded.clone().next().is_none() {
        for value in x_forwarded_for {
            let text = std::str::from_utf8(value).ok()?;
            hops.extend(text.split(',').filter_map(|hop| parse_node(hop.trim())));
        }
    }
    hops.into_iter()
        .rev()
        .find(|hop| !trusted.contains(&hop.ip()))
}

/// A node of `Forwarded` or `X-Forwarded-For`: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711` (port 0 when absent); obfuscated names and `unknown` are skipped.
fn parse_node(node: &str) -> Option<SocketAddr> {
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = node.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn version_1_headers() {
        let v4 = b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 80\r\nGET";
        assert_eq!(parse_proxy(v4), Ok(Some((42, addr("203.0.113.9:4711")))));
        let v6 = b"PROXY TCP6 2001:db8::9 2001:db8::1 4711 443\r\n";
        assert_eq!(
            parse_proxy(v6),
            Ok(Some((v6.len(), addr("[2001:db8::9]:4711"))))
        );
        assert_eq!(parse_proxy(b"PROXY UNKNOWN\r\n"), Ok(Some((15, None))));
        // Every strict prefix is incomplete, never an error.
        for n in 0..42 {
            assert_eq!(parse_proxy(&v4[..n]), Ok(None), "{n}");
        }
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 nonsense 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 99999 80\r\n",
            b"PROXY UDP4 203.0.113.9 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 1\r\n",
            &[b'P'; 200][..],
        ] {
            assert_eq!(
                parse_proxy(bad),
                Err(ProxyError),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert_eq!(
            parse_proxy(&endless),
            Err(ProxyError),
            "no CRLF within 107 bytes"
        );
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.extend([0x20 | command, family]);
        out.extend((body.len() as u16).to_be_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn version_2_headers() {
        let body = [
            203, 0, 113, 9, 192, 0, 2, 1, 0x12, 0x67, 0, 80, 0xEE, 0, 1, 0,
        ];
        let header = v2(1, 0x11, &body);
        let mut stream = header.clone();
        stream.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse_proxy(&stream),
            Ok(Some((header.len(), addr("203.0.113.9:4711")))),
            "TLVs after the addresses are skipped"
        );
        for n in 0..header.len() {
            assert_eq!(parse_proxy(&header[..n]), Ok(None), "{n}");
        }
        let mut v6 = [0u8; 36];
        v6[..16].copy_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
        v6[32..34].copy_from_slice(&4711u16.to_be_bytes());
        assert_eq!(
            parse_proxy(&v2(1, 0x21, &v6)),
            Ok(Some((52, addr("[2001:db8::9]:4711"))))
        );
        assert_eq!(
            parse_proxy(&v2(0, 0x00, &[])),
            Ok(Some((16, None))),
            "LOCAL"
        );
        assert_eq!(
            parse_proxy(&v2(1, 0x31, &[0; 216])),
            Ok(Some((232, None))),
            "AF_UNIX"
        );
        assert_eq!(
            parse_proxy(&v2(1, 0x11, &[1, 2])),
            Err(ProxyError),
            "too short"
        );
        let mut bad = v2(1, 0x11, &body);
        bad[12] = 0x31;
        assert_eq!(parse_proxy(&bad), Err(ProxyError), "version 3");
    }

    #[test]
    fn forwarded_addresses_from_trusted_proxies() {
        let trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let none: [&[u8]; 0] = [];
        let xff: [&[u8]; 1] = [b"198.51.100.7, 203.0.113.5, 10.0.0.2"];
        assert_eq!(
            forwarded_for(none.iter().copied(), xff.iter().copied(), &trusted),
            addr("203.0.113.5:0"),
            "the right-most untrusted hop"
        );
        let fwd: [&[u8]; 2] = [
            b"for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
            b"for=10.0.0.1",
        ];
        assert_eq!(
            forwarded_for(fwd.iter().copied(), xff.iter().copied(), &trusted),
            addr("[2001:db8:cafe::17]:4711"),
            "Forwarded wins over X-Forwarded-For"
        );
        let hidden: [&[u8]; 1] = [b"for=_hidden, for=unknown"];
        assert_eq!(
            forwarded_for(hidden.iter().copied(), none.iter().copied(), &trusted),
            None
        );
        let only_proxies: [&[u8]; 1] = [b"10.0.0.1"];
        assert_eq!(
            forwarded_for(none.iter().copied(), only_proxies.iter().copied(), &trusted),
            None
        );
    }
}
