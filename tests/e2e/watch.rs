//! Watching the environment of every process in the shell's network namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A process seen in the shell's namespace.
#[derive(Debug)]
pub struct Seen {
    /// Every command name the process had (`ip netns exec` execs `sh`, which execs the
    /// client).
    pub comms: BTreeSet<String>,
    /// Variable names, with values only for the harmless markers the test looks for.
    pub env_vars: Vec<String>,
}

/// What the watcher saw: every process by pid, and every real key it found.
pub struct Watched {
    pub procs: BTreeMap<u32, Seen>,
    pub leaks: Vec<String>,
}

/// Scans /proc every 25 ms for processes in one network namespace and checks that no
/// real key is in their environment (or command line).
pub struct EnvWatcher {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<Watched>>,
    thread: std::thread::JoinHandle<()>,
    net_id: String,
    secrets: Vec<String>,
}

impl EnvWatcher {
    pub fn start(net_id: String, secrets: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(Watched {
            procs: BTreeMap::new(),
            leaks: Vec::new(),
        }));
        let thread = {
            let (stop, state, net_id, secrets) =
                (stop.clone(), state.clone(), net_id.clone(), secrets.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    scan(&net_id, &secrets, &mut state.lock().unwrap());
                    std::thread::sleep(Duration::from_millis(25));
                }
            })
        };
        Self {
            stop,
            state,
            thread,
            net_id,
            secrets,
        }
    }

    pub fn stop(self) -> Watched {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let mut state = Arc::try_unwrap(self.state)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap();
        scan(&self.net_id, &self.secrets, &mut state);
        state
    }
}

fn scan(net_id: &str, secrets: &[String], state: &mut Watched) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let base = entry.path();
        match std::fs::read_link(base.join("ns/net")) {
            Ok(link) if link.to_string_lossy() == net_id => {}
            _ => continue,
        }
        // A process may exit between these reads; then it is simply not recorded.
        let (Ok(environ), Ok(cmdline)) = (
            std::fs::read(base.join("environ")),
            std::fs::read(base.join("cmdline")),
        ) else {
            continue;
        };
        let comm = std::fs::read_to_string(base.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let environ = String::from_utf8_lossy(&environ);
        let cmdline = String::from_utf8_lossy(&cmdline);
        for secret in secrets {
            if environ.contains(secret.as_str()) || cmdline.contains(secret.as_str()) {
                state
                    .leaks
                    .push(format!("pid {pid} ({comm}) holds a real key"));
            }
        }
        let env_vars = environ
            .split('\0')
            .filter(|v| !v.is_empty())
            .map(|v| match v.split_once('=') {
                // A preset's dummy key (its real shape, marked): kept, it is no secret.
                Some((k, value)) if value.contains("tokenizerDUMMY") => format!("{k}={value}"),
                Some((k, _)) => format!("{k}="),
                None => v.to_owned(),
            })
            .collect();
        let seen = state.procs.entry(pid).or_insert_with(|| Seen {
            comms: BTreeSet::new(),
            env_vars: Vec::new(),
        });
        seen.comms.insert(comm);
        seen.env_vars = env_vars;
    }
}
