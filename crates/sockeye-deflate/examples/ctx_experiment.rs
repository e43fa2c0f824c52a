use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::time::Instant;

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn corpus(seed: &mut u64) -> Vec<u8> {
    let syms = [
        "AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "ORCL",
    ];
    let mut s = String::new();
    for seq in 0..20000u64 {
        let r = rng(seed);
        s.push_str(&format!(
            ",{{\"seq\":{seq},\"symbol\":\"{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"size\":{},\"venue\":\"{}\"}}",
            syms[(r % 8) as usize],
            100 + (r >> 8) % 400, (r >> 20) % 100,
            100 + (r >> 28) % 400, (r >> 36) % 100,
            (r >> 44) % 10000,
            ["XNAS", "XNYS", "BATS"][((r >> 58) % 3) as usize]
        ));
    }
    s.into_bytes()
}

fn comp(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(input.len() + 128, 0);
    let before = c.total_out();
    c.compress(input, out, FlushCompress::Sync).unwrap();
    let n = (c.total_out() - before) as usize;
    out.truncate(n);
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(n - 4);
}

fn main() {
    let conns = 100usize;
    let msgs = 20000usize;
    let size = 4096usize;
    let mut seed = 0x1234_5678_9abc_def0u64;
    let corpus = corpus(&mut seed);
    let messages: Vec<&[u8]> = (0..msgs)
        .map(|_| {
            let at = (rng(&mut seed) as usize) % (corpus.len() - size);
            &corpus[at..at + size]
        })
        .collect();
    let mut out = Vec::new();
    let level = Compression::new(6);
    // A/B: per-connection context takeover.
    for n in [1usize, conns] {
        let mut cs: Vec<Compress> = (0..n)
            .map(|_| Compress::new_with_window_bits(level, false, 15))
            .collect();
        let t = Instant::now();
        let mut bytes = 0;
        for (i, m) in messages.iter().enumerate() {
            comp(&mut cs[i % n], m, &mut out);
            bytes += out.len();
        }
        println!(
            "own x{n:3}: {:7.2} us/msg {:7.1} B/msg",
            t.elapsed().as_secs_f64() * 1e6 / msgs as f64,
            bytes as f64 / msgs as f64
        );
    }
    // C: shared, reset per message.
    {
        let mut c = Compress::new_with_window_bits(level, false, 15);
        let t = Instant::now();
        let mut bytes = 0;
        for m in &messages {
            comp(&mut c, m, &mut out);
            c.reset();
            bytes += out.len();
        }
        println!(
            "shared   : {:7.2} us/msg {:7.1} B/msg",
            t.elapsed().as_secs_f64() * 1e6 / msgs as f64,
            bytes as f64 / msgs as f64
        );
    }
    // D: shared + dictionary of last K bytes per connection; verify with per-conn inflaters.
    for k in [1024usize, 2048, 4096, 8192, 16384, 32000] {
        let mut c = Compress::new_with_window_bits(level, false, 15);
        let mut hist: Vec<Vec<u8>> = vec![Vec::new(); conns];
        let t = Instant::now();
        let mut bytes = 0;
        let mut outs = Vec::with_capacity(msgs);
        for (i, m) in messages.iter().enumerate() {
            let h = &mut hist[i % conns];
            c.reset();
            if !h.is_empty() {
                c.set_dictionary(h).unwrap();
            }
            comp(&mut c, m, &mut out);
            bytes += out.len();
            if m.len() >= k {
                h.clear();
                h.extend_from_slice(&m[m.len() - k..]);
            } else {
                h.extend_from_slice(m);
                let cut = h.len().saturating_sub(k);
                h.drain(..cut);
            }
            outs.push(out.clone());
        }
        let el = t.elapsed();
        // verify
        let mut ds: Vec<Decompress> = (0..conns)
            .map(|_| Decompress::new_with_window_bits(false, 15))
            .collect();
        for (i, o) in outs.iter().enumerate() {
            let mut input = o.clone();
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut dec = vec![0u8; size + 64];
            let d = &mut ds[i % conns];
            let before = d.total_out();
            d.decompress(&input, &mut dec, FlushDecompress::Sync)
                .unwrap();
            let n = (d.total_out() - before) as usize;
            assert_eq!(&dec[..n], messages[i], "msg {i}");
        }
        println!(
            "dict {k:5}: {:7.2} us/msg {:7.1} B/msg",
            el.as_secs_f64() * 1e6 / msgs as f64,
            bytes as f64 / msgs as f64
        );
    }
}
