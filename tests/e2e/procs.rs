//! Child processes whose output is collected as they run: long-running servers that are
//! waited on until they log something, and clients that are run to completion with a
//! time limit. Every process is killed when its handle is dropped.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One output stream, filled by a reader thread.
#[derive(Clone, Default)]
struct Sink {
    bytes: Arc<Mutex<Vec<u8>>>,
    closed: Arc<AtomicBool>,
}

impl Sink {
    fn drain(&self, mut pipe: impl Read + Send + 'static) {
        let sink = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.bytes.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
            sink.closed.store(true, Ordering::SeqCst);
        });
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A running child process.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pid: u32,
    stdout: Sink,
    stderr: Sink,
}

/// How a process run to completion ended.
pub struct Finished {
    pub name: String,
    pub status: Option<ExitStatus>,
    pub took: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panics with everything the process printed unless it exited 0.
    pub fn ok(self) -> Self {
        match self.status {
            Some(s) if s.success() => self,
            status => panic!(
                "{} failed ({}) after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.name,
                status.map_or("timed out, killed".to_owned(), |s| s.to_string()),
                self.took.as_secs_f64(),
                self.stdout,
                self.stderr
            ),
        }
    }
}

impl Proc {
    /// Start `cmd` with standard input closed and both output streams collected.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let (stdout, stderr) = (Sink::default(), Sink::default());
        stdout.drain(child.stdout.take().unwrap());
        stderr.drain(child.stderr.take().unwrap());
        Self {
            name: name.to_owned(),
            pid: child.id(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// The process id (`ip netns exec` and `env` exec, so this is the program's own).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Wait until standard output or error contains `needle`. Fails (with everything
    /// printed so far) if the process exits first or `timeout` passes.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout().contains(needle) || self.stderr().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                // Let the readers catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "{} exited with {status} before printing {needle:?}\n{}",
                    self.name,
                    self.transcript()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not print {needle:?} within {timeout:?}\n{}",
                    self.name,
                    self.transcript()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit, killing the process after `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let start = Instant::now();
        let mut child = self.child.take().expect("process running");
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = start.elapsed();
        // A grandchild may still hold the pipes; do not wait for it for long.
        let closed_by = Instant::now() + Duration::from_secs(2);
        while !(self.stdout.is_closed() && self.stderr.is_closed()) && Instant::now() < closed_by {
            std::thread::sleep(Duration::from_millis(10));
        }
        Finished {
            name: self.name.clone(),
            status,
            took,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Everything printed so far, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Run `cmd` to completion with `input` on its standard input (a secret or a rule set:
/// never on a command line), its output collected.
pub fn run_with_input(cmd: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
