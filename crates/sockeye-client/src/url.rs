//! `ws://` and `wss://` URLs (`wss://` is WebSocket over TLS).

use core::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Why a URL was refused, or why its host did not resolve: a sentence naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

impl From<String> for UrlError {
    fn from(text: String) -> Self {
        UrlError(text)
    }
}

impl From<&str> for UrlError {
    fn from(text: &str) -> Self {
        UrlError(text.to_owned())
    }
}

/// A parsed `ws://host[:port][/path][?query]` or `wss://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection runs over TLS.
    pub secure: bool,
    /// The `Host` header: the authority as written (`127.0.0.1:9001`, `[::1]:9001`).
    pub authority: String,
    /// The host name or IP literal, without IPv6 brackets.
    pub host: String,
    /// The TCP port (80 for ws:// and 443 for wss:// when the URL names none).
    pub port: u16,
    /// The request target: path and query (`/` when the URL has none).
    pub target: String,
}

impl WsUrl {
    /// Parses `url`.
    ///
    /// # Errors
    ///
    /// A message naming the problem: another scheme, user info, a missing host, an IPv6
    /// address without brackets, a bad port, or a path with spaces or non-ASCII.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("`{url}` is not a URL: expected ws://HOST:PORT/PATH").into());
        };
        let secure = if scheme.eq_ignore_ascii_case("wss") {
            true
        } else if scheme.eq_ignore_ascii_case("ws") {
            false
        } else {
            return Err(format!("unsupported scheme `{scheme}://`: use ws:// or wss://").into());
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let target = match target.as_bytes().first() {
            None => "/".to_owned(),
            Some(b'?') => format!("/{target}"),
            Some(_) => target.to_owned(),
        };
        if !target.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(format!(
                "path `{target}` must be ASCII without spaces (percent-encode it)"
            )
            .into());
        }
        if authority.contains('@') {
            return Err("user info (`user@`) in the URL is not supported".into());
        }
        let (host, port) = split_host_port(authority)?;
        Ok(WsUrl {
            secure,
            authority: authority.to_owned(),
            host: host.to_owned(),
            port: port.unwrap_or(if secure { 443 } else { 80 }),
            target,
        })
    }

    /// The address to connect to: the IP literal, or the first address `host` resolves to.
    ///
    /// # Errors
    ///
    /// When the name does not resolve.
    pub fn resolve(&self) -> Result<SocketAddr, UrlError> {
        self.resolve_all()?
            .into_iter()
            .next()
            .ok_or_else(|| format!("`{}` resolves to no address", self.host).into())
    }

    /// Every address to try, in the resolver's order: the IP literal alone, or what `host`
    /// resolves to.
    ///
    /// # Errors
    ///
    /// When the name does not resolve.
    pub fn resolve_all(&self) -> Result<Vec<SocketAddr>, UrlError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{}`: {e}", self.host))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("`{}` resolves to no address", self.host).into());
        }
        Ok(addrs)
    }
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), UrlError> {
    if authority.is_empty() {
        return Err("the URL has no host: expected ws://HOST:PORT/PATH".into());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((v6, after)) = bracketed.split_once(']') else {
            return Err(format!("unclosed `[` in `{authority}`").into());
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{v6}` is not an IPv6 address").into());
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected `{after}` after `]`").into()),
            },
        };
        (v6, port)
    } else {
        match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "`{authority}`: write IPv6 addresses in brackets, like ws://[::1]:9001/"
                )
                .into());
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host: expected ws://HOST:PORT/PATH".into());
    }
    if !authority.starts_with('[') {
        check_name(host)?;
    }
    let port = match port {
        None => None,
        // Digits only: `u16`'s parser also takes a sign (`+80`), which would then go out in
        // the Host header as written.
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(format!("`{text}` is not a port (1-65535)").into()),
        },
    };
    Ok((host, port))
}

/// A host name goes out as written, in the Host header and in the name lookup: letters, digits,
/// `-`, `.` and `_` only (an internationalised name in its `xn--` form).
fn check_name(host: &str) -> Result<(), UrlError> {
    let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    else {
        return Ok(());
    };
    let hint = if bad.is_ascii() {
        ""
    } else {
        " (write an internationalised name in its ASCII form, xn--...)"
    };
    Err(format!("`{host}` is not a host name: `{bad}` is not allowed in one{hint}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_urls() {
        let table = [
            (
                "ws://127.0.0.1:9001/",
                "127.0.0.1:9001",
                "127.0.0.1",
                9001,
                "/",
            ),
            (
                "ws://127.0.0.1:9001",
                "127.0.0.1:9001",
                "127.0.0.1",
                9001,
                "/",
            ),
            (
                "WS://localhost/chat?x=1#frag",
                "localhost",
                "localhost",
                80,
                "/chat?x=1",
            ),
            ("ws://h:1?q", "h:1", "h", 1, "/?q"),
            ("ws://[::1]:9001/a/b", "[::1]:9001", "::1", 9001, "/a/b"),
            ("ws://[::1]", "[::1]", "::1", 80, "/"),
            (
                "wss://example.com/feed",
                "example.com",
                "example.com",
                443,
                "/feed",
            ),
            ("WSS://[::1]:8443", "[::1]:8443", "::1", 8443, "/"),
            (
                "ws://feed-2_a.xn--bcher-kva.example:0443/",
                "feed-2_a.xn--bcher-kva.example:0443",
                "feed-2_a.xn--bcher-kva.example",
                443,
                "/",
            ),
        ];
        for (text, authority, host, port, target) in table {
            let url = WsUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let secure = text
                .get(..4)
                .is_some_and(|s| s.eq_ignore_ascii_case("wss:"));
            assert_eq!(url.secure, secure, "{text}");
            assert_eq!(url.authority, authority, "{text}");
            assert_eq!(url.host, host, "{text}");
            assert_eq!(url.port, port, "{text}");
            assert_eq!(url.target, target, "{text}");
        }
    }

    #[test]
    fn invalid_urls() {
        let table = [
            ("127.0.0.1:9001", "not a URL"),
            ("http://h/", "unsupported scheme"),
            ("ws:///path", "no host"),
            ("ws://:9001/", "no host"),
            ("ws://u@h/", "user info"),
            ("ws://::1:9001/", "brackets"),
            ("ws://[::1/", "unclosed"),
            ("ws://[nope]:1/", "not an IPv6"),
            ("ws://[::1]x/", "after `]`"),
            ("ws://h:0/", "not a port"),
            ("ws://h:99999/", "not a port"),
            ("ws://h:/", "not a port"),
            ("ws://h/a b", "ASCII"),
            ("ws://h:+80/", "not a port"),
            ("ws://[::1]:+80/", "not a port"),
            ("ws://h:-1/", "not a port"),
            ("ws://b\u{fc}cher.example/", "xn--"),
            ("ws://a b/", "not a host name"),
            ("ws://%68ost/", "not a host name"),
            ("ws://h\"x/", "not a host name"),
        ];
        for (text, needle) in table {
            let err = WsUrl::parse(text).expect_err(text);
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn ip_literals_resolve_without_dns() {
        let url = WsUrl::parse("ws://[::1]:9001/").expect("valid");
        assert_eq!(url.resolve(), Ok("[::1]:9001".parse().expect("addr")));
        assert_eq!(url.resolve_all().expect("resolves").len(), 1);
    }
}
