//! Plain HTTP on the WebSocket port and refusals: `on_http` answers any method and HTTP/1.0
//! (load balancers probe with `HEAD` and `OPTIONS ... HTTP/1.0`), `HEAD` gets no body, the
//! handler reaches the `Handle`, and a `Reject` carries headers. Upgrade requests keep their
//! strict rules.

use sockeye::proto::handshake::Head;
use sockeye::proto::{Message, Request as UpgradeRequest};
use sockeye::server::{Accept, Handle, Handler, HttpResponse, Outbox, Reject};
use sockeye_tests::client::{Client, Pending, Request, http_exchange, start, test_config};

/// Answers `/health` with the open connections, anything else with the method and version it
/// saw; refuses `/private` (401) and `/busy` (429) upgrades with headers.
#[derive(Debug, Clone)]
struct Site;

impl Handler for Site {
    type Conn = ();

    fn on_upgrade(&mut self, req: &UpgradeRequest<'_>, _: &mut Accept<'_>) -> Result<(), Reject> {
        match req.path() {
            "/private" => Err(Reject::new(401, "who are you?\n")
                .with_header("WWW-Authenticate", "Bearer realm=\"feed\"")),
            "/busy" => Err(Reject::new(429, "later\n").with_header("Retry-After", "30")),
            _ => Ok(()),
        }
    }

    fn on_message(&mut self, _: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(msg);
    }

    fn on_http(&mut self, head: &Head<'_>, handle: &Handle) -> HttpResponse {
        let body = if head.path == "/health" {
            format!("ok {}\n", handle.stats().connections_open)
        } else {
            format!("{} HTTP/1.{}\n", head.method, head.minor_version)
        };
        HttpResponse::new(200, "text/plain", body.into_bytes())
    }
}

#[test]
fn any_method_and_http_1_0_reach_on_http_and_head_gets_no_body() {
    let (running, addr) = start(test_config(), Site);
    let _open = Client::connect(addr);
    let get = http_exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (get.status, &get.body[..]),
        (200, &b"ok 2\n"[..]),
        "{}",
        get.head
    );
    let head = http_exchange(addr, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some("5"),
        "the length of the body"
    );
    assert!(head.body.is_empty(), "no body for HEAD: {:?}", head.body);
    let options = http_exchange(addr, b"OPTIONS / HTTP/1.0\r\n\r\n");
    assert_eq!(options.body, b"OPTIONS HTTP/1.0\n");
    let post = http_exchange(
        addr,
        b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.body, b"POST HTTP/1.1\n");
    running.handle().shutdown();
    running.join().expect("no worker died");
}

#[test]
fn refusals_carry_their_headers() {
    let (running, addr) = start(test_config(), Site);
    for (path, status, header, value) in [
        ("/private", 401, "WWW-Authenticate", "Bearer realm=\"feed\""),
        ("/busy", 429, "Retry-After", "30"),
    ] {
        let request = Request {
            path: path.into(),
            ..Request::default()
        };
        let pending = Pending::send(addr, &request).unwrap();
        let mut stream = pending.stream().try_clone().unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(
            answer.contains(&format!("\r\n{header}: {value}\r\n")),
            "{answer}"
        );
    }
    // An upgrade is still held to its rules: HTTP/1.0 with Upgrade is 505.
    let old = http_exchange(
        addr,
        b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(old.status, 505);
    running.handle().shutdown();
    running.join().expect("no worker died");
}
