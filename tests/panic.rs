//! A callback is a fault boundary: a panic in the application's code for one connection
//! closes that connection with 1011 and counts it; the worker, and every other connection on
//! it, goes on.

use std::sync::mpsc;

use sockeye::proto::handshake::Head;
use sockeye::proto::{Message, Request as UpgradeRequest};
use sockeye::server::{Accept, CloseReason, Handler, HttpResponse, Outbox, Reject};
use sockeye_tests::client::{
    Client, OwnedEvent, Pending, Request, http_exchange, start, test_config,
};

/// Echoes, but panics on the text "boom", in `on_upgrade` for the path `/boom`, and in
/// `on_http`; reports every `on_close`.
#[derive(Debug, Clone)]
struct Fragile(mpsc::Sender<String>);

impl Handler for Fragile {
    type Conn = ();

    fn on_upgrade(&mut self, req: &UpgradeRequest<'_>, _: &mut Accept<'_>) -> Result<(), Reject> {
        assert!(req.path() != "/boom", "a bug in on_upgrade");
        Ok(())
    }

    fn on_message(&mut self, _: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        assert!(msg != Message::Text("boom"), "a bug in on_message");
        let _ = out.send(msg);
    }

    fn on_close(&mut self, _: (), why: CloseReason<'_>) {
        let _ = self.0.send(format!("{why:?}"));
    }

    fn on_http(&mut self, _: &Head<'_>, _: &sockeye::server::Handle) -> HttpResponse {
        panic!("a bug in on_http");
    }
}

#[test]
fn a_panic_in_a_callback_costs_its_connection_only() {
    let mut config = test_config();
    config.workers = 1;
    let (tx, closes) = mpsc::channel();
    let (running, addr) = start(config, Fragile(tx));
    let handle = running.handle();
    let mut healthy = Client::connect(addr);
    let mut victim = Client::connect(addr);

    victim.send(Message::Text("boom")).unwrap();
    assert_eq!(
        victim.recv().unwrap(),
        OwnedEvent::Close(Some(1011), "internal error".into())
    );
    assert!(victim.send_owed().unwrap());
    victim.expect_eof().unwrap();
    assert_eq!(closes.recv().unwrap(), "HandlerPanic");

    // The same worker serves the other connection, and new ones.
    healthy.send(Message::Text("still here")).unwrap();
    assert_eq!(healthy.recv_text(), "still here");
    let mut late = Client::connect(addr);
    late.send(Message::Text("hello")).unwrap();
    assert_eq!(late.recv_text(), "hello");

    // A panic in on_upgrade refuses that upgrade with 500; in on_http, answers 500.
    let boom = Request {
        path: "/boom".into(),
        ..Request::default()
    };
    let refused = Pending::send(addr, &boom).unwrap().finish().unwrap_err();
    assert!(refused.to_string().contains("500"), "{refused}");
    let answer = http_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer.status, 500);

    healthy.sync();
    assert_eq!(handle.stats().handler_panics, 3);
    drop((healthy, late));
    handle.shutdown();
    running.join().expect("no worker died");
}
