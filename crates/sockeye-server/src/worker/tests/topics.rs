//! Topics on the virtual clock: who gets a publish, when, in what order, and what a slow
//! subscriber's policy does, to the frame.

use std::sync::Arc;

use sockeye_proto::{CloseCode, Message, OpCode};

use super::sim::{Got, Script, Sim, received};
use crate::handle::OwnedMessage;
use crate::topics::{Publication, PublishReport, SlowConsumer};

fn text(s: &str) -> Got {
    Got::Text(s.to_owned())
}

/// Publishes `payload` on `topic` as a command from another thread would, in a turn of its
/// own, and returns what the worker reported.
fn publish(sim: &mut Sim, topic: &str, payload: &str) -> PublishReport {
    let mut p = Publication::new(topic, Message::Text(payload)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    p.report = Some(tx);
    sim.driver.publish(&Arc::new(p));
    sim.driver.end_turn();
    rx.try_recv().unwrap()
}

fn subscribe(sim: &mut Sim, idx: usize, script: &Script, pattern: &str) {
    sim.send_frame(
        idx,
        script,
        OpCode::Text,
        format!("sub {pattern}").as_bytes(),
    );
    assert_eq!(received(script), [], "no answer to a subscribe");
}

#[test]
fn a_publish_reaches_exact_and_wildcard_subscribers_once_each() {
    let mut sim = Sim::new(Sim::config());
    let conns: Vec<_> = (0..4).map(|_| sim.open()).collect();
    subscribe(&mut sim, conns[0].0, &conns[0].1, "prices.EUR.USD");
    subscribe(&mut sim, conns[1].0, &conns[1].1, "prices.*.USD");
    subscribe(&mut sim, conns[2].0, &conns[2].1, "prices.>");
    // Three subscriptions that all match: still one copy.
    for pattern in ["prices.EUR.USD", "prices.*.USD", "prices.>"] {
        subscribe(&mut sim, conns[3].0, &conns[3].1, pattern);
    }
    let report = publish(&mut sim, "prices.EUR.USD", "1.08");
    assert_eq!(report.delivered, 4);
    for (_, script) in &conns {
        assert_eq!(received(script), [text("1.08")]);
    }
    let report = publish(&mut sim, "prices.GBP.JPY", "190");
    assert_eq!(report.delivered, 2);
    assert_eq!(received(&conns[0].1), []);
    assert_eq!(received(&conns[1].1), []);
    assert_eq!(received(&conns[2].1), [text("190")]);
    assert_eq!(received(&conns[3].1), [text("190")]);
    assert_eq!(
        publish(&mut sim, "prices", "x").delivered,
        0,
        "> needs a token"
    );
    assert_eq!(sim.driver.app.stats.subscriptions, 6);
}

#[test]
fn a_turns_publishes_leave_in_one_write_per_subscriber_from_the_shared_frames() {
    let mut sim = Sim::new(Sim::config());
    let conns: Vec<_> = (0..3).map(|_| sim.open()).collect();
    for (idx, script) in &conns {
        subscribe(&mut sim, *idx, script, "t");
        script.peer().writes = 0;
    }
    let big = "x".repeat(1000);
    let ps: Vec<_> = ["small", &big, "small again"]
        .iter()
        .map(|text| Arc::new(Publication::new("t", Message::Text(text)).unwrap()))
        .collect();
    for p in &ps {
        sim.driver.publish(p);
    }
    // The large frame waits by reference: one count per subscriber, no copy.
    assert_eq!(Arc::strong_count(ps[1].frame()), 1 + conns.len());
    assert!(
        conns.iter().all(|(_, s)| s.peer().wire.is_empty()),
        "staged"
    );
    sim.driver.end_turn();
    let expected: Vec<u8> = ps.iter().flat_map(|p| p.frame().to_vec()).collect();
    for (idx, script) in &conns {
        let peer = script.peer();
        assert_eq!(peer.wire, expected);
        assert_eq!(peer.writes, 1, "one write for three publishes");
        assert!(sim.driver.conns.get(*idx).unwrap().link.queue.is_empty());
    }
    assert_eq!(Arc::strong_count(ps[1].frame()), 1, "released once written");
}

#[test]
fn unsubscribing_and_closing_leave_the_topics() {
    let mut sim = Sim::new(Sim::config());
    let (a, sa) = sim.open();
    let (b, sb) = sim.open();
    subscribe(&mut sim, a, &sa, "room.1");
    subscribe(&mut sim, b, &sb, "room.*");
    sim.send_frame(a, &sa, OpCode::Text, b"unsub room.1");
    assert_eq!(publish(&mut sim, "room.1", "hi").delivered, 1);
    assert_eq!(received(&sb), [text("hi")]);
    assert_eq!(received(&sa), []);
    sim.send_frame(b, &sb, OpCode::Close, &1000u16.to_be_bytes());
    sim.driver.remove(b, None);
    assert_eq!(publish(&mut sim, "room.1", "gone").delivered, 0);
    assert_eq!(sim.driver.app.stats.subscriptions, 0);
    let interest = sim.driver.app.handle.interest();
    assert!(
        interest.workers("room.1").is_empty(),
        "no worker left interested"
    );
}

#[test]
fn a_callback_publish_reaches_itself_in_order_and_the_others_at_the_turn_end() {
    let mut sim = Sim::new(Sim::config());
    let (a, sa) = sim.open();
    let (b, sb) = sim.open();
    subscribe(&mut sim, a, &sa, "chat");
    subscribe(&mut sim, b, &sb, "chat");
    let mut burst = Vec::new();
    for frame in ["one", "pub chat hello", "two"] {
        burst.extend(super::sim::client_frame(
            true,
            OpCode::Text,
            frame.as_bytes(),
        ));
    }
    sim.send(a, &sa, &burst);
    assert_eq!(received(&sa), [text("one"), text("hello"), text("two")]);
    assert_eq!(received(&sb), [text("hello")]);
    // To the others only.
    sim.send_frame(a, &sa, OpCode::Text, b"pubx chat psst");
    assert_eq!(received(&sa), []);
    assert_eq!(received(&sb), [text("psst")]);
}

#[test]
fn sends_and_publishes_from_one_thread_keep_their_order_behind_a_backlog() {
    let mut sim = Sim::new(Sim::config());
    let (idx, script) = sim.open();
    subscribe(&mut sim, idx, &script, "t");
    let id = sim.id(idx);
    script.peer().room = Some(10);
    let mut expected = Vec::new();
    for i in 0..50 {
        if i % 3 == 0 {
            let msg = format!("direct {i}");
            sim.driver.send_to(id, &OwnedMessage::Text(msg.clone()));
            expected.push(text(&msg));
        } else {
            let msg = format!("published {i}");
            publish(&mut sim, "t", &msg);
            expected.push(text(&msg));
        }
        if i % 7 == 0 {
            sim.drain(idx, &script, 33);
        }
    }
    sim.drain(idx, &script, usize::MAX / 2);
    assert_eq!(received(&script), expected);
}

/// A subscriber whose socket takes nothing, with `policy` on topics `a` and `b`.
fn stalled(policy: SlowConsumer, limit: usize) -> (Sim, usize, Script) {
    let mut config = Sim::config();
    config.backpressure.limit = limit;
    config.backpressure.high_water = 64 << 20;
    let mut sim = Sim::new(config);
    let (idx, script) = sim.open();
    for topic in ["a", "b"] {
        sim.driver.app.topics.subscribe(idx, topic, policy).unwrap();
    }
    script.peer().room = Some(0);
    (sim, idx, script)
}

#[test]
fn conflation_keeps_the_newest_pending_message_of_each_topic() {
    let (mut sim, idx, script) = stalled(SlowConsumer::Conflate, 1 << 20);
    let first = publish(&mut sim, "a", "a0");
    assert_eq!(first.delivered, 1, "queued: the socket took none of it");
    for i in 1..=100 {
        let report = publish(&mut sim, "a", &format!("a{i}"));
        assert_eq!(report.conflated, 1);
        if i % 10 == 0 {
            publish(&mut sim, "b", &format!("b{i}"));
        }
    }
    assert_eq!(sim.driver.app.stats.conflated, 99 + 9);
    sim.drain(idx, &script, usize::MAX / 2);
    assert_eq!(received(&script), [text("a0"), text("a100"), text("b100")]);
    // Caught up: the next one goes straight out again.
    assert_eq!(publish(&mut sim, "a", "fresh").delivered, 1);
    assert_eq!(received(&script), [text("fresh")]);
}

#[test]
fn a_subscription_that_stops_conflating_sends_the_waiting_message_first() {
    let (mut sim, idx, script) = stalled(SlowConsumer::Conflate, 1 << 20);
    assert_eq!(publish(&mut sim, "a", "a0").delivered, 1);
    assert_eq!(publish(&mut sim, "a", "a1").conflated, 1);
    assert_eq!(publish(&mut sim, "b", "b1").conflated, 1);
    let topics = &mut sim.driver.app.topics;
    assert!(!topics.subscribe(idx, "a", SlowConsumer::Drop).unwrap());
    // `a2` is the first plain publish of `a`: the conflated `a1` is queued ahead of it, and `b`
    // still waits for the queue to empty.
    assert_eq!(publish(&mut sim, "a", "a2").delivered, 1);
    assert!(sim.driver.app.topics.has_conflated(idx));
    assert_eq!(publish(&mut sim, "a", "a3").delivered, 1);
    sim.drain(idx, &script, usize::MAX / 2);
    assert_eq!(
        received(&script),
        ["a0", "a1", "a2", "a3", "b1"].map(text),
        "one topic's messages in publish order"
    );
    assert!(!sim.driver.app.topics.has_conflated(idx));
}

#[test]
fn a_conflated_message_is_not_refused_when_its_subscription_stops_conflating() {
    let (mut sim, idx, script) = stalled(SlowConsumer::Conflate, 100);
    let [a0, a1, a2] = ["a0", "a1", "a2"].map(|s| format!("{s:>60}"));
    assert_eq!(publish(&mut sim, "a", &a0).delivered, 1);
    assert_eq!(publish(&mut sim, "a", &a1).conflated, 1);
    let topics = &mut sim.driver.app.topics;
    topics.subscribe(idx, "a", SlowConsumer::Fail).unwrap();
    // 62 bytes queued, under the limit of 100: `a1` (admitted when it was conflated) is queued
    // first, and `a2` is then over the limit.
    let report = publish(&mut sim, "a", &a2);
    assert_eq!((report.delivered, report.refused), (0, 1));
    sim.drain(idx, &script, usize::MAX / 2);
    assert_eq!(received(&script), [a0, a1].map(|s| text(&s)));
}

#[test]
fn switching_policies_behind_a_full_socket_keeps_the_queue_bounded() {
    let (mut sim, idx, script) = stalled(SlowConsumer::Conflate, 100);
    let a = |i: usize| format!("a{i:>60}");
    assert_eq!(publish(&mut sim, "a", &a(0)).delivered, 1);
    let mut refused = 0;
    // Each round parks a message as conflated, then a publish under `Fail` finds the queue
    // over the limit: the parked one keeps waiting instead of joining the queue.
    for round in 1..=20 {
        let topics = &mut sim.driver.app.topics;
        topics.subscribe(idx, "a", SlowConsumer::Conflate).unwrap();
        let report = publish(&mut sim, "a", &a(2 * round - 1));
        assert_eq!(report.conflated, 1, "round {round}");
        let topics = &mut sim.driver.app.topics;
        topics.subscribe(idx, "a", SlowConsumer::Fail).unwrap();
        refused += publish(&mut sim, "a", &a(2 * round)).refused;
        let queued = sim.driver.conns.get(idx).unwrap().link.queue.len();
        assert!(queued <= 100 + 64, "round {round}: {queued} bytes queued");
    }
    // The first round's parked message fit (63 bytes queued): it went out, and pushed the
    // queue over the limit for every later round.
    assert_eq!(refused, 20);
    sim.drain(idx, &script, usize::MAX / 2);
    let got = received(&script);
    assert_eq!(got, [a(0), a(1), a(39)].map(|s| text(&s)));
}

#[test]
fn fail_and_drop_miss_the_messages_over_the_limit_and_say_so() {
    for policy in [SlowConsumer::Fail, SlowConsumer::Drop] {
        let (mut sim, idx, script) = stalled(policy, 100);
        let mut total = PublishReport::default();
        for i in 0..10 {
            let payload = format!("{i:>60}");
            total.add(&publish(&mut sim, "a", &payload));
        }
        // 62-byte frames: two fit under the limit of 100 bytes.
        assert_eq!(total.delivered, 2, "{policy:?}");
        match policy {
            SlowConsumer::Fail => assert_eq!(total.refused, 8),
            _ => assert_eq!(total.dropped, 8),
        }
        assert_eq!(sim.driver.app.stats.sends_over_limit, 8);
        sim.drain(idx, &script, usize::MAX / 2);
        assert_eq!(received(&script).len(), 2);
    }
}

#[test]
fn policy_close_closes_the_slow_subscriber_with_its_code() {
    let code = CloseCode::TRY_AGAIN_LATER;
    let (mut sim, idx, script) = stalled(SlowConsumer::Close(code), 100);
    let mut total = PublishReport::default();
    for i in 0..5 {
        total.add(&publish(&mut sim, "a", &format!("{i:>60}")));
    }
    assert_eq!((total.delivered, total.closed), (2, 3));
    assert_eq!(sim.driver.app.stats.backpressure_closes, 1);
    sim.drain(idx, &script, usize::MAX / 2);
    let got = received(&script);
    assert_eq!(got.last(), Some(&Got::Close(Some(code.0))), "{got:?}");
}
