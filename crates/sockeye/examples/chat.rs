//! A chat server: every text message from one client goes to every client.
//!
//! `cargo run -p sockeye --example chat`, then connect to ws://127.0.0.1:9002/chat/NAME.

use std::net::SocketAddr;

use sockeye::proto::{Message, Request};
use sockeye::server::{Accept, Handler, Outbox, Reject, Running, Server, ServerConfig, SetupError};

/// The application: no shared state; the server's handle reaches every connection.
#[derive(Debug, Clone)]
pub struct Chat;

impl Handler for Chat {
    /// Each connection remembers its user's name.
    type Conn = String;

    fn on_upgrade(&mut self, req: &Request<'_>, accept: &mut Accept<'_>) -> Result<String, Reject> {
        // Browsers send Origin: refuse pages from other sites.
        if req
            .origin()
            .is_some_and(|o| !o.starts_with("http://127.0.0.1"))
        {
            return Err(Reject::forbidden());
        }
        accept.select_protocol(&["chat"]);
        let name = req.path().strip_prefix("/chat/").unwrap_or("anonymous");
        Ok(name.to_owned())
    }

    fn on_message(&mut self, name: &mut String, msg: Message<'_>, out: &mut Outbox<'_>) {
        if let Message::Text(text) = msg {
            let line = format!("{name}: {text}");
            // One command per worker; each queues the frame to its open connections.
            let _ = out.handle().broadcast(Message::Text(&line));
        }
    }
}

/// Starts the chat server on `addr` (port 0 picks a free port).
pub fn start(addr: SocketAddr) -> Result<Running, SetupError> {
    Server::bind(ServerConfig::new(addr), Chat)?.spawn()
}

#[allow(dead_code)]
fn main() -> Result<(), SetupError> {
    let running = start(SocketAddr::from(([127, 0, 0, 1], 9002)))?;
    println!("chat on ws://{}/chat/NAME", running.local_addrs()[0]);
    running.join().map_err(SetupError::Worker)
}
