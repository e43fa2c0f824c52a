//! The `sockeye` binary end to end, as the README runs it: `serve` answers the demo page and
//! echoes; `load` measures it in each mode and verifies every echo, over ws:// and wss://
//! (certificates made here with rcgen: SNI, client certificates, reload on change).

use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use sockeye_tests::interop::start_serve;

const BIN: &str = env!("CARGO_BIN_EXE_sockeye");

/// How long a test waits for a line from `sockeye serve` or for a command to end.
const WAIT: Duration = Duration::from_secs(20);

/// A running `sockeye serve`, stopped by its PID when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    /// The start line.
    banner: String,
    /// Its later stderr lines, read on a thread so that it never writes to a closed pipe.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    lines: Receiver<String>,
}

impl Serve {
    /// `sockeye serve` on a free port, one worker unless `extra` says `--threads`.
    fn start(extra: &[&str]) -> Serve {
        let threads: &[&str] = if extra.contains(&"--threads") {
            &[]
        } else {
            &["--threads", "1"]
        };
        let (child, addr, line, lines) = start_serve(
            Command::new(BIN)
                .args(["serve", "--addr", "127.0.0.1:0"])
                .args(threads)
                .args(extra),
            WAIT,
        );
        Serve {
            child,
            addr,
            banner: line,
            lines,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/echo", self.addr)
    }

    #[cfg(feature = "tls")]
    fn wss_url(&self) -> String {
        format!("wss://{}/echo", self.addr)
    }

    /// Waits for a stderr line containing `needle`; returns it.
    #[cfg(feature = "tls")]
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?} from sockeye serve: {e}"),
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(serve: &Serve, args: &[&str]) -> String {
    let url = serve.url();
    load_ok(&[args, &["--url", &url]].concat())
}

/// Runs `sockeye load ARGS --json`, which must succeed; returns its summary.
fn load_ok(args: &[&str]) -> String {
    let output = run(Command::new(BIN).arg("load").args(args).arg("--json"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sockeye load {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `sockeye load ARGS`, which must fail; returns its stderr.
fn load_err(args: &[&str]) -> String {
    let output = run(Command::new(BIN).arg("load").args(args));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "sockeye load {args:?} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// Runs `command` to its end, killing it (by its PID) when its output has not ended after
/// [`WAIT`].
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sockeye");
    // Both pipes are drained on threads (a chatty child cannot block on a full one); they end
    // when the child exits.
    let (tx, done) = mpsc::channel();
    let pipes: [(bool, Box<dyn Read + Send>); 2] = [
        (true, Box::new(child.stdout.take().expect("stdout"))),
        (false, Box::new(child.stderr.take().expect("stderr"))),
    ];
    for (is_stdout, mut pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = tx.send((is_stdout, text));
        });
    }
    let deadline = Instant::now() + WAIT;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((is_stdout, text)) = done.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} ran for more than {WAIT:?}");
        };
        if is_stdout {
            stdout = text;
        } else {
            stderr = text;
        }
    }
    let status = child.wait().expect("wait");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The number after `"key":` in a one-line JSON summary.
fn number(json: &str, key: &str) -> f64 {
    let pattern = format!("\"{key}\":");
    let rest = json
        .split(&pattern)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {json}"))
}

#[test]
fn serve_answers_the_demo_page() {
    let serve = Serve::start(&[]);
    let banner = &serve.banner;
    assert!(
        banner.contains(&format!("http://{}/", serve.addr)),
        "{banner}"
    );
    assert!(banner.contains(&serve.url()), "{banner}");
    let mut stream = TcpStream::connect(serve.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut page = String::new();
    stream
        .read_to_string(&mut page)
        .expect("the page, then EOF");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("<title>sockeye echo</title>"));
    assert!(page.contains("new WebSocket("));
    // Served over https, the page connects with wss.
    assert!(page.contains(r#"location.protocol === "https:" ? "wss" : "ws""#));
}

#[test]
fn load_measures_serve_in_every_mode() {
    let serve = Serve::start(&[]);
    let echo = load(
        &serve,
        &["echo", "-c", "4", "-s", "1KiB", "-d", "1", "--warmup", "0"],
    );
    assert!(number(&echo, "echoes") > 0.0, "{echo}");
    assert_eq!(number(&echo, "mismatches"), 0.0, "{echo}");
    assert_eq!(number(&echo, "errors"), 0.0, "{echo}");
    let latency = load(&serve, &["latency", "-c", "2", "-d", "1", "--warmup", "0"]);
    assert!(number(&latency, "echoes") > 0.0, "{latency}");
    let connect = load(&serve, &["connect", "-c", "50", "--hold", "0.5"]);
    assert_eq!(number(&connect, "established"), 50.0, "{connect}");
    assert_eq!(number(&connect, "still_open"), 50.0, "{connect}");
}

#[test]
fn load_and_serve_negotiate_deflate() {
    let serve = Serve::start(&["--deflate", "--deflate-threshold", "0"]);
    let args = [
        "echo",
        "-c",
        "2",
        "-s",
        "4KiB",
        "--text",
        "--deflate",
        "-d",
        "1",
        "--warmup",
        "0",
    ];
    let echo = load(&serve, &args);
    assert_eq!(number(&echo, "deflate_negotiated"), 2.0, "{echo}");
    assert_eq!(number(&echo, "mismatches"), 0.0, "{echo}");
    assert!(number(&echo, "compression_ratio") > 1.5, "{echo}");
}

#[test]
fn load_names_what_is_wrong_with_its_url() {
    let err = load_err(&["connect", "--url", "http://127.0.0.1:9001/"]);
    assert!(err.contains("unsupported scheme `http://`"), "{err}");
    #[cfg(not(feature = "tls"))]
    {
        let err = load_err(&["connect", "--url", "wss://127.0.0.1:9001/"]);
        assert!(err.contains("built without"), "{err}");
    }
    #[cfg(feature = "tls")]
    {
        let err = load_err(&[
            "connect",
            "--url",
            "ws://127.0.0.1:9001/",
            "--tls-ca",
            "ca.pem",
        ]);
        assert!(err.contains("--tls-ca needs a wss:// URL"), "{err}");
    }
}

#[test]
fn load_fanout_measures_serve_pubsub_across_workers() {
    let serve = Serve::start(&["--threads", "2"]);
    let url = format!("ws://{}/pubsub", serve.addr);
    for pace in [&["--rate", "200"][..], &["--in-flight", "8"][..]] {
        let layout = [
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "40",
            "--topics",
            "4",
            "--per-subscriber",
            "2",
            "--publishers",
            "4",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ];
        let summary = load_ok(&[&layout[..], pace].concat());
        assert!(number(&summary, "deliveries") > 0.0, "{summary}");
        for zero in ["lost", "duplicated", "out_of_order", "mismatches", "errors"] {
            assert_eq!(number(&summary, zero), 0.0, "{zero}: {summary}");
        }
    }
}

#[test]
fn load_fanout_refuses_impossible_layouts() {
    // (arguments, what the error says)
    let table: [(&[&str], &str); 6] = [
        (
            &["--topics", "2", "--per-subscriber", "3"],
            "--per-subscriber 3 is more than --topics 2",
        ),
        (
            &["--topics", "2", "--publishers", "3"],
            "--publishers 3 is more than --topics 2",
        ),
        (&["--size", "15"], "--size must be at least 16"),
        (&["--subscribers", "0"], "--subscribers must be at least 1"),
        (&["--topic-prefix", "a b"], "no whitespace or wildcards"),
        (
            &["--publish-url", "wss://127.0.0.1:1/pubsub"],
            "must both be ws:// or both wss://",
        ),
    ];
    for (args, expected) in table {
        let err = load_err(&[&["fanout"], args].concat());
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn help_explains_both_commands() {
    let output = Command::new(BIN).arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("serve") && help.contains("load"), "{help}");
}

/// wss://: `serve --tls-cert` and `load` with a CA, SNI, client certificates, and reloads; the
/// certificates are made here with rcgen.
#[cfg(feature = "tls")]
mod tls {
    use std::path::{Path, PathBuf};

    use super::{Serve, load_err, load_ok, number};

    /// A certificate authority made for one test.
    struct Ca {
        cert: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    impl Ca {
        fn new(name: &str) -> Ca {
            let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
                rcgen::KeyUsagePurpose::DigitalSignature,
            ];
            let key = rcgen::KeyPair::generate().expect("CA key");
            let cert = params.self_signed(&key).expect("CA certificate");
            Ca { cert, key }
        }

        /// A certificate for `names` signed by this CA: its PEM and its key's PEM (PKCS#8).
        fn issue(&self, names: &[&str]) -> (String, String) {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params = rcgen::CertificateParams::new(names.clone()).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, names[0].as_str());
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = params
                .signed_by(&key, &self.cert, &self.key)
                .expect("certificate");
            (cert.pem(), key.serialize_pem())
        }

        /// Writes the CA certificate to `dir/name`.
        fn write(&self, dir: &Path, name: &str) -> String {
            write(dir, name, &self.cert.pem())
        }
    }

    /// An empty directory for one test's files, under the target directory.
    fn scratch(test: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    /// Writes `text` to `dir/name`; returns the path as a string for the command line.
    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a test file");
        path.to_str().expect("a UTF-8 path").to_owned()
    }

    /// A short connect run against `url` trusting `ca`.
    fn connect_with<'a>(url: &'a str, ca: &'a str) -> [&'a str; 9] {
        [
            "connect", "-c", "2", "--hold", "0", "--url", url, "--tls-ca", ca,
        ]
    }

    #[test]
    fn load_measures_serve_over_tls() {
        let dir = scratch("tls");
        let ca = Ca::new("sockeye test CA");
        let ca_pem = ca.write(&dir, "ca.pem");
        let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]);
        let cert = write(&dir, "cert.pem", &cert);
        let key = write(&dir, "key.pem", &key);
        let serve = Serve::start(&["--tls-cert", &cert, "--tls-key", &key]);
        assert!(serve.banner.contains(&serve.wss_url()), "{}", serve.banner);
        assert!(serve.banner.contains("https://"), "{}", serve.banner);
        let url = serve.wss_url();
        let trusted = ["--url", &url, "--tls-ca", &ca_pem];

        let echo = load_ok(
            &[
                &["echo", "-c", "4", "-s", "1KiB", "-d", "1", "--warmup", "0"][..],
                &trusted,
            ]
            .concat(),
        );
        assert!(echo.contains(r#""tls":true"#), "{echo}");
        assert!(number(&echo, "echoes") > 0.0, "{echo}");
        assert_eq!(number(&echo, "mismatches"), 0.0, "{echo}");
        assert_eq!(number(&echo, "errors"), 0.0, "{echo}");
        // 64 KiB messages span many TLS records both ways.
        let big = load_ok(
            &[
                &[
                    "echo",
                    "-c",
                    "2",
                    "--in-flight",
                    "4",
                    "-s",
                    "64KiB",
                    "-d",
                    "1",
                    "--warmup",
                    "0",
                ][..],
                &trusted,
            ]
            .concat(),
        );
        assert!(number(&big, "echoes") > 0.0, "{big}");
        assert_eq!(number(&big, "mismatches"), 0.0, "{big}");
        // The name checked can differ from the address dialled.
        let latency = load_ok(
            &[
                &["latency", "-c", "2", "-d", "1", "--warmup", "0"][..],
                &trusted,
                &["--tls-server-name", "localhost"],
            ]
            .concat(),
        );
        assert!(number(&latency, "echoes") > 0.0, "{latency}");
        let connect = load_ok(&[&["connect", "-c", "50", "--hold", "0.5"][..], &trusted].concat());
        assert_eq!(number(&connect, "established"), 50.0, "{connect}");
        assert_eq!(number(&connect, "still_open"), 50.0, "{connect}");
        assert!(number(&connect, "handshakes_per_s") > 0.0, "{connect}");
        // --tls with a ws:// URL, and --tls-insecure without the CA.
        let plain_url = serve.url();
        let insecure = load_ok(&[
            "connect",
            "-c",
            "2",
            "--hold",
            "0",
            "--url",
            &plain_url,
            "--tls",
            "--tls-insecure",
        ]);
        assert_eq!(number(&insecure, "established"), 2.0, "{insecure}");

        // Without the CA the certificate is refused, and the error says why.
        let err = load_err(&["connect", "-c", "2", "--hold", "0", "--url", &url]);
        assert!(
            err.contains("tls: invalid peer certificate: UnknownIssuer"),
            "{err}"
        );
        assert!(err.contains("--tls-ca"), "{err}");
        let err = load_err(
            &[
                &["connect", "-c", "1", "--hold", "0"][..],
                &trusted,
                &["--tls-server-name", "elsewhere.example"],
            ]
            .concat(),
        );
        assert!(err.contains("not valid for name"), "{err}");
        // A plain client on the TLS port, and a TLS client on a plain port, fail cleanly.
        let err = load_err(&["connect", "-c", "1", "--hold", "0", "--url", &plain_url]);
        assert!(err.contains("failed to connect"), "{err}");
        let plain = Serve::start(&[]);
        let err = load_err(&[
            "connect",
            "-c",
            "1",
            "--hold",
            "0",
            "--url",
            &plain.wss_url(),
            "--tls-insecure",
        ]);
        assert!(err.contains("tls: "), "{err}");
    }

    #[test]
    fn serve_picks_certificates_by_sni_and_checks_client_certificates() {
        let dir = scratch("tls-sni");
        let main_ca = Ca::new("main CA");
        let other_ca = Ca::new("other CA");
        let client_ca = Ca::new("client CA");
        let (cert, key) = main_ca.issue(&["localhost", "127.0.0.1"]);
        let cert = write(&dir, "cert.pem", &cert);
        let key = write(&dir, "key.pem", &key);
        let (other_cert, other_key) = other_ca.issue(&["other.test"]);
        let other_cert = write(&dir, "other.pem", &other_cert);
        let other_key = write(&dir, "other.key", &other_key);
        let other_ca_pem = other_ca.write(&dir, "other-ca.pem");
        let client_ca_pem = client_ca.write(&dir, "client-ca.pem");
        let (client_cert, client_key) = client_ca.issue(&["load.client"]);
        let client_cert = write(&dir, "client.pem", &client_cert);
        let client_key = write(&dir, "client.key", &client_key);
        let sni = format!("other.test={other_cert},{other_key}");
        let serve = Serve::start(&[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-sni",
            &sni,
            "--tls-client-ca",
            &client_ca_pem,
        ]);
        let url = serve.wss_url();
        let other = [
            "--url",
            &url,
            "--tls-ca",
            &other_ca_pem,
            "--tls-server-name",
            "other.test",
        ];
        let client = [
            "--tls-client-cert",
            &client_cert,
            "--tls-client-key",
            &client_key,
        ];
        let echo = load_ok(
            &[
                &["echo", "-c", "2", "-d", "1", "--warmup", "0"][..],
                &other,
                &client,
            ]
            .concat(),
        );
        assert!(number(&echo, "echoes") > 0.0, "{echo}");
        // No client certificate: refused by the server.
        let err = load_err(&[&["connect", "-c", "1", "--hold", "0"][..], &other].concat());
        assert!(err.contains("tls: "), "{err}");
        // A client certificate from another CA: refused too.
        let (stray_cert, stray_key) = other_ca.issue(&["stray.client"]);
        let stray = [
            "--tls-client-cert",
            &write(&dir, "stray.pem", &stray_cert),
            "--tls-client-key",
            &write(&dir, "stray.key", &stray_key),
        ];
        let err = load_err(&[&["connect", "-c", "1", "--hold", "0"][..], &other, &stray].concat());
        assert!(err.contains("tls: "), "{err}");

        // Optional client certificates: none is fine.
        let optional = Serve::start(&[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &client_ca_pem,
            "--tls-client-auth",
            "optional",
        ]);
        let main_ca_pem = main_ca.write(&dir, "main-ca.pem");
        let url = optional.wss_url();
        let connect = load_ok(&connect_with(&url, &main_ca_pem));
        assert_eq!(number(&connect, "established"), 2.0, "{connect}");
    }

    #[test]
    fn serve_reloads_certificates_when_their_files_change() {
        let dir = scratch("tls-reload");
        let old_ca = Ca::new("old CA");
        let new_ca = Ca::new("new CA");
        let old_ca_pem = old_ca.write(&dir, "old-ca.pem");
        let new_ca_pem = new_ca.write(&dir, "new-ca.pem");
        let (cert_text, key_text) = old_ca.issue(&["localhost", "127.0.0.1"]);
        let cert = write(&dir, "cert.pem", &cert_text);
        let key = write(&dir, "key.pem", &key_text);
        let serve = Serve::start(&[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-reload-secs",
            "1",
        ]);
        let url = serve.wss_url();
        load_ok(&connect_with(&url, &old_ca_pem));

        // A broken key is reported, and the old certificate stays in use.
        write(&dir, "key.pem", "not a key");
        serve.wait_for("TLS reload failed");
        load_ok(&connect_with(&url, &old_ca_pem));

        // A certificate from a new CA is picked up without a restart.
        let (cert_text, key_text) = new_ca.issue(&["localhost", "127.0.0.1"]);
        write(&dir, "cert.pem", &cert_text);
        write(&dir, "key.pem", &key_text);
        serve.wait_for("TLS certificates reloaded");
        load_ok(&connect_with(&url, &new_ca_pem));
        let err = load_err(&connect_with(&url, &old_ca_pem));
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn serve_names_the_tls_file_it_cannot_use() {
        let dir = scratch("tls-files");
        let (cert, _) = Ca::new("CA").issue(&["localhost"]);
        let cert = write(&dir, "cert.pem", &cert);
        let missing = dir.join("missing-key.pem");
        let missing = missing.to_str().expect("UTF-8");
        let serve = super::serve_fails;
        let err = serve(&["--tls-cert", &cert, "--tls-key", missing]);
        assert!(
            err.contains("cannot read") && err.contains(missing),
            "{err}"
        );
        let garbage = write(&dir, "garbage.pem", "not a certificate");
        let err = serve(&["--tls-cert", &garbage, "--tls-key", &cert]);
        assert!(
            err.contains(&garbage) && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let err = serve(&["--tls-cert", &cert, "--tls-key", &garbage]);
        assert!(
            err.contains(&garbage) && err.contains("private key"),
            "{err}"
        );
        // --tls-key without --tls-cert is a usage error.
        let err = serve(&["--tls-key", &cert]);
        assert!(err.contains("--tls-cert"), "{err}");
    }
}

/// `sockeye serve` with `args`, which must fail at start: its stderr.
fn serve_fails(args: &[&str]) -> String {
    let output = run(Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--threads", "1"])
        .args(args));
    assert!(!output.status.success(), "serve {args:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serve_names_a_bad_nats_setting() {
    let serve = serve_fails;
    let err = serve(&["--nats", "nats://[::1"]);
    assert!(err.contains("bad NATS address \"nats://[::1\""), "{err}");
    let err = serve(&["--nats", "nats://127.0.0.1:4222", "--nats-prefix", "a..b"]);
    assert!(
        err.contains("bad NATS prefix \"a..b\"") && err.contains("empty"),
        "{err}"
    );
    // --nats-prefix without --nats is a usage error.
    let err = serve(&["--nats-prefix", "x"]);
    assert!(err.contains("--nats"), "{err}");
}

/// Opens a WebSocket to `addr` by hand: the upgrade request, then the 101 read to its end.
fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream
        .write_all(
            b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the 101");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    stream
}

/// Sends `signal` (a name `kill` knows) to the process.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits for the process to exit; its status.
fn exit_status(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "sockeye serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_closes_every_connection_with_1001_then_exits_0() {
    let mut serve = Serve::start(&["--shutdown-timeout", "10"]);
    let mut client = upgraded(serve.addr);
    signal(&serve.child, "TERM");
    // The close frame: 0x88, its length, then 1001.
    let mut frame = [0u8; 4];
    client.read_exact(&mut frame).expect("a close frame");
    assert_eq!(frame, [0x88, frame[1], 0x03, 0xe9], "{frame:?}");
    let mut rest = vec![0u8; usize::from(frame[1]) - 2];
    client.read_exact(&mut rest).expect("its reason");
    // The client answers; the server finishes and exits cleanly.
    client
        .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9])
        .expect("the answer");
    let status = exit_status(&mut serve.child);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut serve = Serve::start(&["--shutdown-timeout", "60"]);
    let mut client = upgraded(serve.addr);
    signal(&serve.child, "INT");
    let mut frame = [0u8; 2];
    client.read_exact(&mut frame).expect("a close frame");
    assert_eq!(frame[0], 0x88);
    // The client never answers: without a second signal the server would wait 60 s.
    let started = Instant::now();
    signal(&serve.child, "INT");
    let status = exit_status(&mut serve.child);
    assert_eq!(status.code(), Some(128 + 2), "{status:?}");
    assert!(started.elapsed() < WAIT);
}
