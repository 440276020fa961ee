//! The destination guard against a name that resolves to a public and a private
//! address (with the guard's other tests, `tests/integration/destination_guard.rs`;
//! here because it needs control of name resolution, hence root).
//!
//! The real binary runs in a network namespace of its own, `tkz-dual-PID`, whose
//! loopback also carries 203.0.113.7 (public: TEST-NET-3 is not in the built-in list)
//! and 10.1.2.3 (private), each with a listener on the same port that counts
//! connections. An `/etc/hosts` listing `dual.test` twice (public first, so a dialer
//! that tries the first address would reach it) is bind-mounted over the host's in a
//! private mount namespace, so the host's `/etc` is never written and glibc returns
//! both addresses. The request must be refused with 400 before any connection attempt
//! to either address; `public.test` (only the public address) is the control that
//! shows the setup would be dialled.
//!
//! Everything is removed on drop, on panic too: the processes in the namespace, the
//! namespace, the temporary hosts file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokenizer::auth::BearerAuth;
use tokenizer::secret::{OpenKey, Secret, b64};

use crate::procs::Proc;
use crate::{BIN, netns};

const PUBLIC: &str = "203.0.113.7";
const PRIVATE: &str = "10.1.2.3";
const UPSTREAM_PORT: u16 = 8443;
const PROXY: &str = "127.0.0.1:8080";
const TOKEN: &str = "dual-token-3e1f77";
const AUTH: &str = "dual-caller-pw-90ab";

const HOSTS: &str = "\
127.0.0.1 localhost
203.0.113.7 dual.test
10.1.2.3 dual.test
10.1.2.3 dual-private-first.test
203.0.113.7 dual-private-first.test
10.1.2.3 private.test
203.0.113.7 public.test
";

/// The namespace; removed (with every process in it) when dropped.
struct Ns {
    name: String,
}

impl Ns {
    fn create() -> Self {
        let ns = Self {
            name: format!("tkz-dual-{}", std::process::id()),
        };
        // Left by an earlier run of this process id, or a stale one: start afresh.
        if netns::list().contains(&ns.name) {
            remove(&ns.name);
        }
        netns::ip(&["netns", "add", &ns.name]);
        netns::ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        for addr in [PUBLIC, PRIVATE] {
            netns::ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "lo",
            ]);
        }
        ns
    }

    /// Run `f` on a thread inside the namespace: the sockets it makes live there, also
    /// after they are handed back.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns takes a file descriptor that stays open for the call and a
            // flag; it changes only this thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// Kill everything in `name` and delete it. Never panics.
fn remove(name: &str) {
    for _ in 0..100 {
        let pids = netns::pids(name);
        if pids.is_empty() {
            break;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .status();
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Err(e) = netns::try_ip(&["netns", "del", name]) {
        eprintln!("dual-resolution cleanup: {e}");
    }
}

/// A listener that counts the connections it accepts (and closes them at once).
struct Counter {
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    fn start(listener: TcpListener) -> Self {
        listener.set_nonblocking(true).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { count, stop }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One request on a connection made inside the namespace; status and body.
fn get(ns: &Ns, url: &str, sealed: &str) -> (u16, String) {
    let mut stream = ns.enter(|| TcpStream::connect(PROXY).unwrap());
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    write!(
        stream,
        "GET {url} HTTP/1.1\r\nHost: {host}\r\nProxy-Tokenizer: {sealed}\r\n\
         Proxy-Authorization: Bearer {AUTH}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{url}: no response: {out:?}"));
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

#[test]
fn a_name_with_a_public_and_a_private_address_is_refused_without_a_dial() {
    if !crate::preflight() {
        return;
    }
    let ns = Ns::create();
    let dir = tempfile::Builder::new()
        .prefix(&format!(
            "{}{}-dual-",
            netns::TMP_PREFIX,
            std::process::id()
        ))
        .tempdir()
        .unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, HOSTS).unwrap();

    let (public, private) = ns.enter(|| {
        let bind = |ip: &str| {
            TcpListener::bind(SocketAddr::new(ip.parse().unwrap(), UPSTREAM_PORT)).unwrap()
        };
        (bind(PUBLIC), bind(PRIVATE))
    });
    let (public, private) = (Counter::start(public), Counter::start(private));

    let key = OpenKey::generate();
    let secret = serde_json::json!({
        "inject_processor": {"token": TOKEN},
        "bearer_auth": {"digest": b64::encode(BearerAuth::for_token(AUTH).digest.expose())},
    });
    let sealed = Secret::from_json(secret.to_string().as_bytes())
        .unwrap()
        .seal(&key.seal_key());

    // A private mount namespace in which the hosts file covers /etc/hosts, then the
    // network namespace, then the proxy.
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && exec ip netns exec "$2" "$3" serve"#)
        .arg("sh")
        .arg(&hosts)
        .arg(&ns.name)
        .arg(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPEN_KEY", &*key.to_hex())
        .env("LISTEN_ADDRESS", PROXY)
        .env("UPSTREAM_CONNECT_TIMEOUT", "3s")
        .env("RUST_LOG", "debug");
    let mut proxy = Proc::spawn("tokenizer serve", cmd);
    proxy
        .wait_for("listening", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));

    for name in ["dual.test", "dual-private-first.test", "private.test"] {
        let url = format!("http://{name}:{UPSTREAM_PORT}/");
        let (status, body) = get(&ns, &url, &sealed);
        assert_eq!(status, 400, "{url}: {body:?}\n{}", proxy.transcript());
        assert!(
            body.starts_with("bad request: destination not allowed (")
                && body.contains("UPSTREAM_ALLOW_CIDRS"),
            "{url}: {body:?}"
        );
        assert!(
            !body.contains(PUBLIC) && !body.contains(PRIVATE),
            "{body:?}"
        );
    }
    // Give a stray dial time to land before counting. A fixed wait, not a poll: what is
    // checked is that no dial happens, and there is no event to wait for instead; a dial
    // made alongside the refusal reaches these loopback listeners well within 300 ms.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(public.count(), 0, "the public address was dialled");
    assert_eq!(private.count(), 0, "the private address was dialled");

    // The control: a name with only the public address is dialled (the listener is not
    // TLS, so the answer is 502).
    let (status, body) = get(
        &ns,
        &format!("http://public.test:{UPSTREAM_PORT}/"),
        &sealed,
    );
    assert_eq!(status, 502, "{body:?}\n{}", proxy.transcript());
    assert_eq!(public.count(), 1);
    assert_eq!(private.count(), 0);

    // The log writer writes in batches (at least every 100 ms).
    let logged = proxy.wait_for("dual.test", Duration::from_secs(5));
    let log = proxy.stderr();
    assert!(logged.is_ok(), "the refusal is logged:\n{log}");
    for secret in [TOKEN, AUTH] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
    assert!(log.contains("dual.test"), "the refusal is logged:\n{log}");
    drop(proxy);
    drop(ns);
}
