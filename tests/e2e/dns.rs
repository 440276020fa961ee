//! The transparent test's DNS: the fake internet's recording resolver (dns_server.py),
//! what `dig` got, the sidecar's DNS audit lines and its memory.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::procs::Finished;

/// One query the fake internet's resolver received (one line of its log).
#[derive(Clone, Debug)]
pub struct Query {
    pub name: String,
    pub qtype: String,
    pub transport: String,
    /// The address it came from.
    pub from: String,
}

/// Every query in dns_server.py's log, in the order received.
pub fn queries(log: &Path) -> Vec<Query> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let doc: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let field = |k: &str| doc[k].as_str().unwrap_or_default().to_owned();
            Query {
                name: field("name"),
                qtype: field("type"),
                transport: field("transport"),
                from: field("from"),
            }
        })
        .collect()
}

/// `dns_server.py --log LOG --listen ADDR --answer NAME=IP…` (with `/usr/bin/python3`:
/// it needs the standard library only).
pub fn server_command(ns: &str, log: &Path, listen: &[&str], answers: &[(&str, &str)]) -> Command {
    let mut cmd = crate::netns::Namespaces::command(
        ns,
        Path::new("/usr/bin/python3"),
        &[("PATH".into(), "/usr/bin:/bin".into())],
    );
    cmd.arg(crate::root().join("tests/e2e/dns_server.py"))
        .arg("--log")
        .arg(log);
    for addr in listen {
        cmd.args(["--listen", addr]);
    }
    for (name, ip) in answers {
        cmd.args(["--answer", &format!("{name}={ip}")]);
    }
    cmd
}

/// What one `dig +noall +comments +answer …` got.
#[derive(Debug)]
pub struct Dig {
    /// The answer's rcode (`NOERROR`, `REFUSED`, …); `None` when no answer came.
    pub status: Option<String>,
    /// The answer section: (type, data) per record.
    pub answers: Vec<(String, String)>,
    /// Whether dig exited 0.
    pub exited_ok: bool,
    /// Everything dig printed, for failure messages.
    pub output: String,
}

impl Dig {
    pub fn parse(done: &Finished) -> Self {
        let status = done
            .stdout
            .lines()
            .find_map(|l| l.split_once("status: "))
            .map(|(_, rest)| {
                rest.split(|c: char| c == ',' || c.is_whitespace())
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
        let answers = done
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.len() >= 5).then(|| (fields[3].to_owned(), fields[4..].join(" ")))
            })
            .collect();
        Self {
            status,
            answers,
            exited_ok: done.status.is_some_and(|s| s.success()),
            output: format!(
                "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
                done.status, done.stdout, done.stderr
            ),
        }
    }

    /// The data of the answer's records of type `rtype`.
    pub fn records(&self, rtype: &str) -> Vec<&str> {
        self.answers
            .iter()
            .filter(|(t, _)| t == rtype)
            .map(|(_, d)| d.as_str())
            .collect()
    }
}

/// The sidecar's audit lines for DNS (`"mode":"dns"`) in what it printed.
pub fn audit_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| l.contains("\"mode\":\"dns\""))
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|doc| doc["mode"] == "dns")
        .collect()
}

/// A process's resident set (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
}
