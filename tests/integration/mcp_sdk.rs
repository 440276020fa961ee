//! `allowed_mcp_tools` with the official MCP Python SDK on both ends.
//!
//! The server (`mcp_server.py`) is the SDK's FastMCP over streamable HTTP, behind TLS with a
//! leaf from the test CA, answering 401 unless it gets `Authorization: Bearer REAL`; it logs
//! every request and every tool that ran. The client (`mcp_client.py`) is the SDK's
//! `streamable_http_client` + `ClientSession`: initialize, list the tools, call
//! `search_issues`, call `delete_repo`, call `get_issue` on the same session; it prints
//! what each step returned or raised.
//!
//! Between them: the tokenizer as an HTTP proxy (the client sends `Proxy-Tokenizer`), or
//! the sidecar in front of it (the client speaks TLS to `mcp.test`, resolved to the
//! sidecar). The sealed secret injects REAL for `mcp.test` and allows `search_*` and
//! `get_issue`. Each path runs with the server answering `application/json` and
//! `text/event-stream`, so both forms of a `tools/list` answer are filtered.
//!
//! Every path runs with both major versions of the SDK: 1.x from `tests/requirements.txt`
//! (see `support::python`), and 2.x ([`MCP_V2`]), which these tests install into an
//! environment of their own under `target/`, since the two cannot share one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::ca::TestCa;
use crate::support::python;
use crate::support::sidecar::SideProxy;
use crate::support::tokenizer::Tokenizer;

/// What the server requires and the proxy injects; the client never holds it.
const REAL: &str = "mcp-real-token-7c3b9e";

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration")
        .join(name)
}

/// Which major version of the SDK runs both ends.
#[derive(Clone, Copy, Debug)]
enum Sdk {
    /// 1.x, from `tests/requirements.txt` (the shared test interpreter).
    V1,
    /// 2.x (FastMCP renamed MCPServer, httpx2), in its own environment: [`MCP_V2`].
    V2,
}

/// The 2.x release the `V2` tests install into `target/test-python-mcp2`.
const MCP_V2: &str = "mcp==2.3.0";

/// The interpreter with `sdk`, prepared off the runtime's threads (the first call may
/// pip-install).
async fn interpreter(sdk: Sdk) -> &'static Path {
    match sdk {
        Sdk::V1 => tokio::task::spawn_blocking(python::python).await.unwrap(),
        Sdk::V2 => tokio::task::spawn_blocking(python_v2).await.unwrap(),
    }
}

/// A virtual environment of its own (not seeing the system's site-packages, where the
/// 1.x SDK may be) with [`MCP_V2`]; made once, then found by its stamp file.
fn python_v2() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-python-mcp2");
        let bin = venv.join("bin/python3");
        let stamp = venv.join("requirements.stamp");
        if bin.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(MCP_V2) {
            return bin;
        }
        let run = |cmd: &mut std::process::Command, what: &str| {
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("the MCP 2.x tests need {what}: {e}"));
            assert!(
                out.status.success(),
                "the MCP 2.x tests need {what}; it failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        };
        run(
            std::process::Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "python3 -m venv",
        );
        run(
            std::process::Command::new(&bin).args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                MCP_V2,
            ]),
            &format!("pip install {MCP_V2}"),
        );
        std::fs::write(&stamp, MCP_V2).unwrap();
        bin
    })
}

/// How the server answers POSTs.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `json_response=True`: `application/json`.
    Json,
    /// The SDK's default: `text/event-stream`.
    Sse,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Json => "json",
            Mode::Sse => "sse",
        }
    }
}

/// `mcp_server.py` on 127.0.0.1:PORT with a leaf for `mcp.test`; killed when dropped.
struct McpServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl McpServer {
    async fn start(ca: &TestCa, sdk: Sdk, mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.leaf_pem(&["mcp.test"]);
        let cert_path = dir.path().join("leaf.pem");
        let key_path = dir.path().join("leaf.key");
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let log = dir.path().join("server.jsonl");
        std::fs::write(&log, "").unwrap();
        let mut child = Command::new(interpreter(sdk).await)
            .arg(script("mcp_server.py"))
            .arg("--cert")
            .arg(&cert_path)
            .arg("--key")
            .arg(&key_path)
            .args(["--token", REAL, "--mode", mode.flag()])
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run python3");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line))
            .await
            .expect("mcp_server.py printed its port within 60 s")
            .unwrap();
        if read == 0 {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .unwrap();
            panic!("mcp_server.py exited before listening: {err}");
        }
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
            .as_u64()
            .unwrap() as u16;
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// `--upstream-resolve` entry pinning mcp.test (port 443) to this server.
    fn pin(&self) -> String {
        format!("mcp.test=127.0.0.1:{}", self.port)
    }

    /// Every line the server logged so far.
    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What `mcp_client.py ARGS` printed: its JSON summary, then stdout and stderr whole.
async fn run_client(sdk: Sdk, args: &[String]) -> (Value, String, String) {
    let child = Command::new(interpreter(sdk).await)
        .arg(script("mcp_client.py"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run python3");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("mcp_client.py finished within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "mcp_client.py failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("mcp_client.py printed no summary:\n{stdout}\n{stderr}"));
    (summary, stdout, stderr)
}

/// The sealed secret: REAL for mcp.test, no caller auth, only `search_*` and `get_issue`.
fn secret() -> Value {
    json!({
        "inject_processor": {"token": REAL},
        "no_auth": {},
        "allowed_hosts": ["mcp.test"],
        "allowed_mcp_tools": ["search_*", "get_issue"],
    })
}

/// The tools the server ran, in order, each with the Authorization it ran under.
fn tools_run(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .filter_map(|e| {
            Some((
                e.get("tool")?.as_str()?.to_owned(),
                e["authorization"].as_str().unwrap_or("<none>").to_owned(),
            ))
        })
        .collect()
}

/// The JSON-RPC methods that reached the server (`tools/call:NAME` for calls).
fn methods_seen(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter_map(|e| e.get("jsonrpc")?.as_array())
        .flatten()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// The client, through the proxy or the sidecar with the filtering secret, saw only the
/// allowed tools, got search_issues and get_issue answered with the credential injected,
/// was refused delete_repo (which never reached the server) with an error the SDK
/// surfaced, kept its session, and never saw REAL.
fn assert_filtered(
    sdk: Sdk,
    what: &str,
    server: &McpServer,
    (summary, stdout, stderr): (Value, String, String),
) {
    let log = server.log();
    let context = format!(
        "{what}\nclient summary: {summary:#}\nclient stderr: {stderr}\nserver log: {log:#?}"
    );
    // The refusal is a 403 (the contract) with a JSON-RPC error body. The 2.x
    // SDK reads that body and reports a failed tool call; the 1.x SDK's transport raises
    // on any non-2xx answer to a POST, which ends its session (docs/secrets.md says
    // so): there the refusal must still have come as the 403, and nothing after it runs.
    let v1_ended = matches!(sdk, Sdk::V1);
    if v1_ended {
        let fatal = summary["fatal"].to_string();
        assert!(
            fatal.contains("403"),
            "the 1.x session should end on the 403 refusal; {context}"
        );
    } else {
        assert_eq!(
            summary["fatal"],
            Value::Null,
            "the session failed; {context}"
        );
    }
    assert_eq!(
        summary["tools"],
        json!(["get_issue", "search_issues"]),
        "tools/list was not filtered; {context}"
    );
    assert_eq!(
        summary["search_issues"],
        json!({"is_error": false, "text": ["found 2 issues for 'proxy': #7, #9"]}),
        "{context}"
    );
    let refused = &summary["delete_repo"];
    if v1_ended {
        // Ended at the refusal: no answer, and no later call.
    } else if refused["raised"].is_null() {
        // Surfaced as a tool result: it must say it failed.
        assert_eq!(
            refused["is_error"], true,
            "delete_repo was not refused; {context}"
        );
    } else {
        assert_eq!(refused["code"], -32001, "{context}");
        assert_eq!(
            refused["error_message"], "tool \"delete_repo\" is not allowed by this credential",
            "{context}"
        );
    }
    if !v1_ended {
        assert_eq!(
            summary["get_issue"],
            json!({"is_error": false, "text": ["issue #7: the proxy works"]}),
            "the session did not survive the refusal; {context}"
        );
    }

    // The server: the allowed tools ran with the real credential, delete_repo never did
    // and never arrived, and no request came without the credential.
    let bearer = format!("Bearer {REAL}");
    let mut expected = vec![("search_issues".to_owned(), bearer.clone())];
    if !v1_ended {
        expected.push(("get_issue".to_owned(), bearer.clone()));
    }
    assert_eq!(tools_run(&log), expected, "{context}");
    let methods = methods_seen(&log);
    assert!(
        !methods.iter().any(|m| m.contains("delete_repo")),
        "the refused call reached the server; {context}"
    );
    let mut arrived = vec!["initialize", "tools/list", "tools/call:search_issues"];
    if !v1_ended {
        arrived.push("tools/call:get_issue");
    }
    for m in arrived {
        assert!(
            methods.iter().any(|s| s == m),
            "{m} never arrived; {context}"
        );
    }
    for entry in log.iter().filter(|e| e.get("http").is_some()) {
        assert_eq!(entry["authorization"], bearer.as_str(), "{context}");
    }

    // The client never held the credential.
    assert!(
        !stdout.contains(REAL) && !stderr.contains(REAL),
        "the client saw the real token; {context}"
    );
}

/// The Python side alone: the SDK client with the real token talks to the server, which
/// lists and runs all three tools; without the token it is refused.
async fn directly(sdk: Sdk) {
    let ca = TestCa::new();
    let server = McpServer::start(&ca, sdk, Mode::Sse).await;
    let direct = |auth: &str| {
        vec![
            "--url".to_owned(),
            "https://mcp.test/mcp".to_owned(),
            "--ca".to_owned(),
            ca.pem_file(),
            "--map".to_owned(),
            format!("mcp.test:443=127.0.0.1:{}", server.port),
            "--header".to_owned(),
            format!("Authorization: Bearer {auth}"),
        ]
    };
    let (summary, _, stderr) = run_client(sdk, &direct(REAL)).await;
    assert_eq!(summary["fatal"], Value::Null, "{summary:#}\n{stderr}");
    let major = match sdk {
        Sdk::V1 => "1.",
        Sdk::V2 => "2.",
    };
    let version = summary["initialized"]["sdk"].as_str().unwrap();
    assert!(version.starts_with(major), "{sdk:?} ran mcp {version}");
    assert_eq!(
        summary["tools"],
        json!(["delete_repo", "get_issue", "search_issues"])
    );
    assert_eq!(
        summary["delete_repo"],
        json!({"raised": null, "is_error": false, "text": ["deleted acme/prod"]})
    );
    assert_eq!(summary["get_issue"]["is_error"], false);
    let names: Vec<String> = tools_run(&server.log()).into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["search_issues", "delete_repo", "get_issue"]);

    let (summary, _, _) = run_client(sdk, &direct("not-the-token")).await;
    assert!(
        summary["fatal"].to_string().contains("401") || summary["initialized"].is_null(),
        "{summary:#}"
    );
    assert_eq!(
        tools_run(&server.log()).len(),
        3,
        "a tool ran without the token"
    );
}

/// The client → the tokenizer as its HTTP proxy → the server, with `Proxy-Tokenizer`.
async fn through_the_proxy(sdk: Sdk, mode: Mode) {
    let ca = TestCa::new();
    let server = McpServer::start(&ca, sdk, mode).await;
    let tk = Tokenizer::start(&ca, &["--upstream-resolve", &server.pin()]).await;
    let sealed = tk.seal(&secret());
    let out = run_client(
        sdk,
        &[
            "--url".to_owned(),
            "http://mcp.test/mcp".to_owned(),
            "--proxy".to_owned(),
            tk.proxy_url(),
            "--header".to_owned(),
            format!("Proxy-Tokenizer: {sealed}"),
        ],
    )
    .await;
    let what = format!("SDK {sdk:?} through the proxy, {mode:?} responses");
    assert_filtered(sdk, &what, &server, out);
}

/// The client → TLS to `mcp.test` (resolved to the sidecar, trusting its CA) → the
/// sidecar, whose target mcp.test carries the sealed secret → the tokenizer → the server.
async fn through_the_sidecar(sdk: Sdk, mode: Mode) {
    let ca = TestCa::new();
    let server = McpServer::start(&ca, sdk, mode).await;
    let tk = Tokenizer::start(&ca, &["--upstream-resolve", &server.pin()]).await;
    let sealed = tk.seal(&secret());
    let proxy = tk.proxy_url();
    let side = SideProxy::start(
        &["--targets", "mcp.test=MCP_SEALED", "--proxy", &proxy],
        &[("MCP_SEALED", &sealed)],
    )
    .await;
    let out = run_client(
        sdk,
        &[
            "--url".to_owned(),
            "https://mcp.test/mcp".to_owned(),
            "--ca".to_owned(),
            side.ca_path().display().to_string(),
            "--map".to_owned(),
            format!("mcp.test:443=127.0.0.1:{}", side.addr.port()),
        ],
    )
    .await;
    let what = format!("SDK {sdk:?} through the sidecar, {mode:?} responses");
    assert_filtered(sdk, &what, &server, out);
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_client_and_server_work_directly_with_the_real_token() {
    directly(Sdk::V1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_through_the_proxy_with_json_responses() {
    through_the_proxy(Sdk::V1, Mode::Json).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_through_the_proxy_with_event_stream_responses() {
    through_the_proxy(Sdk::V1, Mode::Sse).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_through_the_sidecar_with_json_responses() {
    through_the_sidecar(Sdk::V1, Mode::Json).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_through_the_sidecar_with_event_stream_responses() {
    through_the_sidecar(Sdk::V1, Mode::Sse).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_client_and_server_work_directly_with_the_real_token() {
    directly(Sdk::V2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_through_the_proxy_with_json_responses() {
    through_the_proxy(Sdk::V2, Mode::Json).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_through_the_proxy_with_event_stream_responses() {
    through_the_proxy(Sdk::V2, Mode::Sse).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_through_the_sidecar_with_json_responses() {
    through_the_sidecar(Sdk::V2, Mode::Json).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_through_the_sidecar_with_event_stream_responses() {
    through_the_sidecar(Sdk::V2, Mode::Sse).await;
}
