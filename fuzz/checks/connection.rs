//! A server connection fed the input in chunks of `data[0] % 64 + 1` bytes, the way an engine
//! does, must deliver the same events, replies and error as when fed the input whole. Bit 6 of
//! `data[0]` swaps the default limits for tiny ones, so the 1009 paths are reachable.
//!
//! Shared by `fuzz/fuzz_targets/connection.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use std::time::Instant;

use sockeye_proto::frame::MAX_HEADER_LEN;
use sockeye_proto::{Config, Connection, NoExtension, ProtocolError, State};

type Outcome = (Vec<String>, Vec<u8>, Option<ProtocolError>);

fn drive(data: &[u8], chunk: usize, config: Config, now: Instant) -> Outcome {
    let mut conn = Connection::server(config, NoExtension);
    let (mut pending, mut buf, mut events, mut tx) = (vec![], vec![], vec![], vec![]);
    for (i, bytes) in data.chunks(chunk).enumerate() {
        pending.extend_from_slice(bytes);
        loop {
            let len = pending.len();
            let read = match conn.handle_read(&mut pending, &mut buf, now) {
                Ok(read) if read.is_blocked() => break,
                Ok(read) => read,
                Err(err) => {
                    let mut close = Vec::new();
                    assert!(conn.state() == State::Closed && conn.poll_transmit(&mut close));
                    assert!(
                        close[..2] == [0x88, 2] && close[2..4] == err.close_code().0.to_be_bytes()
                    );
                    pending.extend_from_slice(&data[((i + 1) * chunk).min(data.len())..]);
                    let after = conn.handle_read(&mut pending, &mut buf, now).unwrap();
                    assert!(after.event.is_none() && !conn.poll_transmit(&mut close));
                    return (events, tx, Some(err));
                }
            };
            assert!(read.consumed <= len);
            events.extend(read.event.map(|event| format!("{event:?}")));
            let consumed = read.consumed;
            pending.drain(..consumed);
            conn.poll_transmit(&mut tx);
        }
        // At most an incomplete header, or an incomplete masked control frame.
        assert!(
            pending.len() < MAX_HEADER_LEN + 125,
            "{} bytes left",
            pending.len()
        );
    }
    (events, tx, None)
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let Some((&select, data)) = data.split_first() else {
        return;
    };
    let mut config = Config::default();
    if select & 0x40 != 0 {
        (
            config.max_frame_size,
            config.max_message_size,
            config.max_fragments,
        ) = (64, 100, 3);
    }
    let now = Instant::now();
    let chunked = drive(data, usize::from(select % 64) + 1, config, now);
    assert_eq!(chunked, drive(data, data.len().max(1), config, now));
}
