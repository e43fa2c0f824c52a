//! The engine's behaviour on a virtual clock: timers, keepalive, backpressure marks and
//! policies, linger, the close handshake and the control lane, each to the millisecond and
//! byte, with no socket and no sleep.

mod sim;
mod topics;

use std::time::Duration;

use sockeye_proto::{CloseCode, OpCode};

use self::sim::{Got, Note, REQUEST, Sim, client_frame, peek, received};
use crate::config::BackpressurePolicy;
use crate::handle::OwnedMessage;
use crate::worker::conns::Phase;

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_handshake_that_never_completes_is_dropped_at_its_deadline() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.connect();
    sim.send(idx, &script, &REQUEST[..30]);
    sim.advance(secs(10) - MS);
    assert_eq!(sim.phase(idx), Some(Phase::Handshake));
    sim.advance(MS);
    assert_eq!(sim.phase(idx), None, "dropped at 10 s");
    assert!(script.peer().wire.is_empty(), "no answer to half a request");
    assert_eq!(sim.driver.app.stats.rejected, 1);
    assert!(sim.notes().is_empty(), "the handler never heard of it");
}

#[test]
fn an_idle_connection_is_pinged_at_half_the_timeout_and_kept_while_it_answers() {
    let mut config = Sim::config();
    config.idle_timeout = Some(secs(60));
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    for round in 0..4u64 {
        let start = sim.elapsed;
        sim.advance_to(start + secs(30) - MS);
        assert!(received(&script).is_empty(), "round {round}: no ping early");
        sim.advance_to(start + secs(30));
        assert_eq!(received(&script), [Got::Ping(vec![])], "round {round}");
        sim.advance(secs(10));
        sim.send_frame(idx, &script, OpCode::Pong, b"");
    }
    assert_eq!(sim.phase(idx), Some(Phase::Open));
    assert!(sim.notes().is_empty());
}

#[test]
fn an_idle_connection_that_does_not_answer_is_closed_with_1001_and_not_waited_for() {
    let mut config = Sim::config();
    config.idle_timeout = Some(secs(60));
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    sim.advance(secs(30));
    assert_eq!(received(&script), [Got::Ping(vec![])]);
    sim.advance(secs(30) - MS);
    assert_eq!(sim.phase(idx), Some(Phase::Open));
    sim.advance(MS);
    assert_eq!(received(&script), [Got::Close(Some(1001))]);
    assert!(script.peer().shut, "FIN sent at once");
    assert_eq!(sim.phase(idx), Some(Phase::Lingering));
    assert_eq!(sim.notes(), []);
    sim.advance(secs(1));
    assert_eq!(sim.phase(idx), None, "dropped after a second of linger");
    assert_eq!(sim.notes(), [Note::Close("Timeout(Idle)".into())]);
    assert_eq!(sim.driver.app.stats.closed_timeout, 1);
}

/// An open connection closed by its idle timer (60 s) while its socket takes nothing.
fn idle_close_behind_a_full_socket() -> (Sim, usize, sim::Script) {
    let mut config = Sim::config();
    config.idle_timeout = Some(secs(60));
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    script.peer().room = Some(0);
    sim.advance(secs(60));
    (sim, idx, script)
}

#[test]
fn an_idle_close_the_socket_cannot_take_goes_out_before_the_fin() {
    let (mut sim, idx, script) = idle_close_behind_a_full_socket();
    assert!(!script.peer().shut, "no FIN ahead of the close frame");
    assert_eq!(sim.phase(idx), Some(Phase::Draining));
    sim.drain(idx, &script, 1 << 10);
    assert_eq!(received(&script), [Got::Close(Some(1001))]);
    assert!(script.peer().shut, "the FIN follows it");
    assert_eq!(sim.phase(idx), Some(Phase::Lingering));
    sim.advance(secs(5));
    assert_eq!(sim.phase(idx), None);
    assert_eq!(sim.notes(), [Note::Close("Timeout(Idle)".into())]);

    // A peer that takes nothing is dropped at the unresponsive linger, FIN or not.
    let (idx, script) = sim.open();
    script.peer().room = Some(0);
    sim.advance(secs(60));
    sim.advance(secs(1) - MS);
    assert_eq!(sim.phase(idx), Some(Phase::Draining));
    sim.advance(MS);
    assert_eq!(sim.phase(idx), None);
    assert!(script.peer().wire.is_empty() && !script.peer().shut);
    assert_eq!(sim.notes(), [Note::Close("Timeout(Idle)".into())]);
}

#[test]
fn what_arrives_while_draining_is_read_once_lingering_starts() {
    let (mut sim, idx, script) = idle_close_behind_a_full_socket();
    assert_eq!(sim.phase(idx), Some(Phase::Draining));
    sim.send(idx, &script, b"late bytes");
    assert_eq!(script.peer().inbound.len(), 10, "draining reads nothing");
    sim.drain(idx, &script, 1 << 10);
    assert_eq!(sim.phase(idx), Some(Phase::Lingering));
    assert!(
        script.peer().inbound.is_empty(),
        "read (and discarded) with no new edge"
    );
    script.peer().eof = true;
    sim.advance(MS);
    assert_eq!(
        sim.phase(idx),
        Some(Phase::Lingering),
        "an EOF needs its edge"
    );
    sim.driver.event(idx, false, false, true);
    assert_eq!(sim.phase(idx), None, "the peer's FIN ends it");
    assert_eq!(sim.notes(), [Note::Close("Timeout(Idle)".into())]);
}

#[test]
fn an_unanswered_close_is_dropped_at_the_close_timeout() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    let id = sim.id(idx);
    sim.driver.close_id(id, CloseCode::NORMAL, "done");
    sim.driver.end_turn();
    assert_eq!(received(&script), [Got::Close(Some(1000))]);
    sim.advance(secs(5) - MS);
    assert_eq!(sim.phase(idx), Some(Phase::Open));
    sim.advance(MS);
    assert_eq!(sim.phase(idx), None);
    assert_eq!(sim.notes(), [Note::Close("Timeout(CloseHandshake)".into())]);
}

#[test]
fn an_answered_close_ends_at_once_with_the_local_code() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    let id = sim.id(idx);
    sim.driver.close_id(id, CloseCode::NORMAL, "done");
    sim.driver.end_turn();
    assert_eq!(received(&script), [Got::Close(Some(1000))]);
    sim.send_frame(idx, &script, OpCode::Close, &[0x03, 0xe8]);
    assert_eq!(
        sim.phase(idx),
        None,
        "both close frames went: the socket closes"
    );
    assert_eq!(sim.notes(), [Note::Close("Local(CloseCode(1000))".into())]);
}

#[test]
fn a_peer_close_is_echoed_then_the_server_closes_first() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    sim.send_frame(idx, &script, OpCode::Close, &[0x03, 0xe8, b'b', b'y', b'e']);
    assert_eq!(received(&script), [Got::Close(Some(1000))]);
    assert_eq!(sim.phase(idx), None);
    let notes = sim.notes();
    assert_eq!(notes.len(), 1);
    assert!(matches!(&notes[0], Note::Close(why) if why.starts_with("Remote")));
}

#[test]
fn the_lifetime_closes_with_1001_whatever_the_traffic() {
    let mut config = Sim::config();
    config.max_lifetime = Some(secs(100));
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    for _ in 0..9 {
        sim.advance(secs(11));
        sim.send_frame(idx, &script, OpCode::Text, b"hi");
    }
    assert_eq!(received(&script).len(), 9);
    sim.advance_to(secs(100));
    assert_eq!(received(&script), [Got::Close(Some(1001))]);
    sim.send_frame(idx, &script, OpCode::Close, &[0x03, 0xe9]);
    assert_eq!(sim.phase(idx), None);
    assert_eq!(
        sim.notes().pop(),
        Some(Note::Close("Timeout(Lifetime)".into()))
    );
}

#[test]
fn a_trickled_message_is_closed_at_the_message_timeout() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    // A 1 MiB frame announced, then one byte a second: each byte would reset the idle timer.
    let frame = client_frame(true, OpCode::Binary, &vec![7u8; 1 << 20]);
    sim.send(idx, &script, &frame[..14]);
    for i in 0..59 {
        sim.advance(secs(1));
        sim.send(idx, &script, &frame[14 + i..15 + i]);
    }
    assert_eq!(sim.phase(idx), Some(Phase::Open));
    sim.advance_to(secs(60));
    assert_eq!(received(&script), [Got::Close(Some(1008))]);
    assert!(script.peer().shut, "the rest is not waited for");
    assert!(
        sim.driver.conns.get(idx).unwrap().rx.is_none(),
        "its buffer is freed"
    );
    sim.advance(secs(1));
    assert_eq!(sim.phase(idx), None);
    assert_eq!(sim.notes(), [Note::Close("Timeout(Message)".into())]);
}

#[test]
fn a_slow_but_steady_large_message_inside_the_limit_arrives() {
    let mut config = Sim::config();
    config.message_timeout = Some(secs(30));
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    let frame = client_frame(true, OpCode::Binary, &vec![7u8; 1 << 20]);
    for chunk in frame.chunks(frame.len().div_ceil(29)) {
        sim.send(idx, &script, chunk);
        sim.advance(secs(1));
    }
    assert_eq!(sim.notes(), [Note::Binary(1 << 20)]);
    // The next message has its own 30 s.
    sim.send(idx, &script, &frame[..1000]);
    sim.advance(secs(29));
    assert_eq!(sim.phase(idx), Some(Phase::Open));
    assert_eq!(received(&script), [Got::Binary(1 << 20)]);
}

#[test]
fn reading_pauses_over_the_high_water_mark_and_resumes_at_the_low_one() {
    let mut config = Sim::config();
    config.backpressure.high_water = 100_000;
    config.backpressure.low_water = 20_000;
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    script.peer().room = Some(0);
    let frame = client_frame(true, OpCode::Binary, &[1u8; 40_000]);
    for _ in 0..3 {
        sim.send(idx, &script, &frame);
    }
    let slot = sim.driver.conns.get(idx).unwrap();
    assert!(slot.read_paused, "{} bytes queued", slot.link.queue.len());
    assert_eq!(sim.driver.app.stats.read_pauses, 1);
    // Paused: what the peer sends stays in the socket.
    script.peer().inbound.extend(&frame);
    sim.driver.event(idx, true, false, false);
    assert_eq!(script.peer().inbound.len(), frame.len());
    assert_eq!(sim.notes().len(), 3);
    // The peer reads some: still over the low mark.
    sim.drain(idx, &script, 80_000);
    assert!(sim.driver.conns.get(idx).unwrap().read_paused);
    // Then enough: on_writable, and the waiting frame is read at the turn's end.
    sim.drain(idx, &script, 30_000);
    assert_eq!(sim.notes(), [Note::Writable, Note::Binary(40_000)]);
    assert!(script.peer().inbound.is_empty());
}

#[test]
fn a_pong_overtakes_megabytes_of_queued_data() {
    let mut config = Sim::config();
    config.backpressure.high_water = 64 << 20;
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    script.peer().room = Some(100_000);
    let id = sim.id(idx);
    let chunk = OwnedMessage::Binary(vec![3u8; 64 << 10]);
    for _ in 0..64 {
        sim.driver.send_to(id, &chunk);
    }
    sim.driver.end_turn();
    let queued = sim.driver.conns.get(idx).unwrap().link.queue.len();
    assert!(queued > 3 << 20, "{queued} bytes queued");
    sim.send_frame(idx, &script, OpCode::Ping, b"are you there");
    sim.drain(idx, &script, 70_000);
    let got = peek(&script);
    let pong = got
        .iter()
        .position(|g| *g == Got::Pong(b"are you there".to_vec()))
        .expect("the pong left with the next write");
    assert!(pong <= 3, "the pong came after {pong} messages of 64 KiB");
    // Everything else follows in order.
    sim.drain(idx, &script, usize::MAX / 2);
    assert_eq!(received(&script).len(), 65);
}

#[test]
fn a_server_close_goes_out_after_at_most_one_partly_written_frame() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    script.peer().room = Some(10_000);
    let id = sim.id(idx);
    for _ in 0..100 {
        sim.driver
            .send_to(id, &OwnedMessage::Binary(vec![3u8; 50_000]));
    }
    sim.driver.end_turn();
    sim.driver.close_id(id, CloseCode::NORMAL, "bye");
    sim.driver.end_turn();
    sim.drain(idx, &script, 100_000);
    let got = received(&script);
    assert_eq!(got, [Got::Binary(50_000), Got::Close(Some(1000))]);
    assert_eq!(sim.driver.conns.get(idx).unwrap().link.queue.len(), 0);
}

#[test]
fn policy_close_sends_1008_promptly_and_reports_backpressure() {
    let mut config = Sim::config();
    config.backpressure.limit = 1 << 20;
    config.backpressure.high_water = 64 << 20;
    config.backpressure.policy = BackpressurePolicy::Close(CloseCode::POLICY_VIOLATION);
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    script.peer().room = Some(1000);
    let id = sim.id(idx);
    for _ in 0..40 {
        sim.driver
            .send_to(id, &OwnedMessage::Binary(vec![3u8; 30_000]));
        sim.driver.end_turn();
    }
    sim.drain(idx, &script, 100_000);
    let got = received(&script);
    assert_eq!(got.last(), Some(&Got::Close(Some(1008))), "{got:?}");
    assert!(
        got.len() <= 3,
        "{} messages before the close",
        got.len() - 1
    );
    assert_eq!(sim.driver.app.stats.sends_over_limit, 1);
    assert_eq!(sim.driver.app.stats.backpressure_closes, 1);
    // Unanswered: the reason stays the policy's.
    sim.advance(secs(5));
    assert_eq!(sim.phase(idx), None);
    assert_eq!(sim.notes(), [Note::Close("Backpressure".into())]);
}

#[test]
fn policy_drop_drops_the_sends_over_the_limit_and_keeps_the_connection() {
    let mut config = Sim::config();
    config.backpressure.limit = 100_000;
    config.backpressure.high_water = 64 << 20;
    config.backpressure.policy = BackpressurePolicy::Drop;
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    script.peer().room = Some(0);
    let id = sim.id(idx);
    for _ in 0..10 {
        sim.driver
            .send_to(id, &OwnedMessage::Binary(vec![3u8; 30_000]));
    }
    sim.driver.end_turn();
    // 4 fit under the limit (the fourth goes over it); the rest are dropped.
    assert_eq!(sim.driver.app.stats.sends_over_limit, 6);
    assert_eq!(sim.driver.app.stats.sends_dropped, 6);
    sim.drain(idx, &script, usize::MAX / 2);
    assert_eq!(received(&script).len(), 4);
    assert_eq!(sim.phase(idx), Some(Phase::Open));
}

#[test]
fn a_socket_error_on_write_ends_the_connection_as_io() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    script.peer().broken = true;
    sim.send_frame(idx, &script, OpCode::Text, b"echo me");
    assert_eq!(sim.phase(idx), None);
    assert_eq!(
        sim.notes(),
        [
            Note::Text("echo me".into()),
            Note::Close("Io(BrokenPipe)".into())
        ]
    );
}

#[test]
fn a_refused_request_lingers_until_the_peer_closes_or_the_timer() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.connect();
    sim.send(idx, &script, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(script.peer().wire.starts_with(b"HTTP/1.1 426"));
    assert!(script.peer().shut);
    assert_eq!(sim.phase(idx), Some(Phase::Lingering));
    sim.advance(secs(5) - MS);
    assert_eq!(sim.phase(idx), Some(Phase::Lingering));
    sim.advance(MS);
    assert_eq!(sim.phase(idx), None, "the close timeout bounds the linger");
    assert!(sim.notes().is_empty());
}

#[test]
fn a_slot_is_retired_before_its_generation_wraps() {
    let mut sim = Sim::new(Sim::config());
    sim.driver.conns.start_generations_at(u32::MAX - 1);
    let (idx, _script) = sim.open();
    let first = sim.id(idx);
    sim.driver.remove(idx, None);
    let (again, _s) = sim.open();
    assert_eq!(again, idx, "the slot is reused once more");
    let second = sim.id(again);
    assert_ne!(first, second);
    sim.driver.remove(again, None);
    let (third, _s) = sim.open();
    assert_ne!(third, idx, "the slot at the last generation is retired");
    for stale in [first, second] {
        assert_eq!(sim.driver.find(stale), None);
    }
}

#[test]
fn a_stale_id_addresses_nobody_after_70_000_connections_on_its_slot() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    let stale = sim.id(idx);
    sim.send_frame(idx, &script, OpCode::Close, &[0x03, 0xe8]);
    assert_eq!(sim.phase(idx), None);
    for _ in 0..70_000 {
        let (again, script) = sim.connect();
        assert_eq!(again, idx, "one slot, reused");
        let id = sim.id(again);
        assert_ne!(id, stale);
        assert_eq!(sim.driver.find(stale), None);
        // A send to the stale id reaches nobody.
        sim.driver
            .send_to(stale, &OwnedMessage::Text("private".into()));
        sim.driver.remove(again, None);
        assert!(script.peer().wire.is_empty());
    }
}

#[test]
fn pings_sent_through_the_handle_are_control_frames() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    let id = sim.id(idx);
    sim.driver.send_to(id, &OwnedMessage::Ping(b"p1".to_vec()));
    sim.driver.broadcast(&OwnedMessage::Ping(b"p2".to_vec()));
    sim.driver.send_to(id, &OwnedMessage::Pong(b"p3".to_vec()));
    sim.driver.end_turn();
    assert_eq!(
        received(&script),
        [
            Got::Ping(b"p1".to_vec()),
            Got::Ping(b"p2".to_vec()),
            Got::Pong(b"p3".to_vec())
        ]
    );
}

#[test]
fn handle_sends_and_replies_leave_in_the_order_the_worker_ran_them() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    let id = sim.id(idx);
    // Two handle sends wait in the queue for the turn's end; a reply made meanwhile goes
    // behind them.
    sim.driver.send_to(id, &OwnedMessage::Text("h1".into()));
    sim.driver.send_to(id, &OwnedMessage::Text("h2".into()));
    let frame = client_frame(true, OpCode::Text, b"reply");
    script.peer().inbound.extend(&frame);
    sim.driver.event(idx, true, false, false);
    sim.driver.send_to(id, &OwnedMessage::Text("h3".into()));
    sim.driver.end_turn();
    let texts = |got: Vec<Got>| -> Vec<String> {
        got.into_iter()
            .map(|g| match g {
                Got::Text(t) => t,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(texts(received(&script)), ["h1", "h2", "reply", "h3"]);
}
