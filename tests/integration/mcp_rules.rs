//! `allowed_mcp_tools` through the running proxy (issue 26): a `tools/call` of a tool the
//! seal does not allow is refused with a JSON-RPC error before the server sees it, in a
//! single message or a batch, whatever other secrets ride along; the body is judged as
//! the server will decode it; the audit line and `/metrics` name the tools. (The real
//! MCP SDK's client and server, and `tools/list` filtering: `mcp_sdk.rs`.)

use serde_json::{Value, json};

use crate::support::attack::{AUTH, REAL, assert_no_credential, call, caller_sealed, env};
use crate::support::{Env, bearer, with};

fn mcp(extra: Value) -> Value {
    with(
        json!({"inject_processor": {"token": REAL}, "bearer_auth": bearer(AUTH),
               "allowed_mcp_tools": ["search_*", "get_issue"]}),
        extra,
    )
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn tool_call(id: Value, name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": {"q": "x"}}})
    .to_string()
}

async fn post(e: &Env, secrets: &[&Value], body: &str) -> crate::support::Reply {
    call(e, "POST", "http://api.test/mcp", secrets, &[JSON], body).await
}

#[tokio::test]
async fn a_tool_the_seal_does_not_name_is_refused_before_the_server() {
    let e = env(&[]).await;
    let s = mcp(json!({"id": "mcp-gh"}));
    let got = post(&e, &[&s], &tool_call(json!(1), "search_issues")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    // The server's answer goes through the reflection guard like any other.
    assert!(got.body.contains("[REDACTED]"), "{}", got.body);
    assert_no_credential("mcp answer", &got.body, REAL);

    let before = e.upstream.seen().len();
    let got = post(&e, &[&s], &tool_call(json!("req-7"), "delete_repo")).await;
    assert_eq!(got.status, 403, "{}", got.body);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let answer: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(answer["jsonrpc"], "2.0");
    assert_eq!(answer["id"], "req-7");
    assert_eq!(answer["error"]["code"], -32001);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("delete_repo")
    );
    assert_eq!(e.upstream.seen().len(), before, "the server never saw it");

    // The audit line names the tools and the decision; /metrics counts them.
    let entries = e.admin().audit("", 2).await;
    let refused = entries
        .iter()
        .find(|x| x["status"] == 403)
        .expect("the refusal is audited");
    assert_eq!(refused["mcp_tools"], json!(["delete_repo"]));
    assert_eq!(refused["decision"], "denied");
    let allowed = entries.iter().find(|x| x["status"] == 200).unwrap();
    assert_eq!(allowed["mcp_tools"], json!(["search_issues"]));
    let metrics = e.admin().metrics().await;
    assert!(
        metrics.contains("tokenizer_mcp_tool_calls_total{decision=\"denied\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_batch_with_one_refused_call_is_refused_whole() {
    let e = env(&[]).await;
    let s = mcp(json!({}));
    let batch = format!(
        "[{},{},{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}}]",
        tool_call(json!(1), "get_issue"),
        tool_call(json!(2), "delete_repo"),
    );
    let before = e.upstream.seen().len();
    let got = post(&e, &[&s], &batch).await;
    assert_eq!(got.status, 403, "{}", got.body);
    let answers: Vec<Value> = serde_json::from_str(&got.body).unwrap();
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(answers.len(), 2, "{}", got.body);
    assert!(ids.contains(&&json!(1)) && ids.contains(&&json!(2)));
    assert_eq!(e.upstream.seen().len(), before);
}

#[tokio::test]
async fn the_body_is_judged_as_the_server_decodes_it() {
    let e = env(&[]).await;
    let s = mcp(json!({}));
    let before = e.upstream.seen().len();
    let cases: &[(&str, u16, &str)] = &[
        // Escapes: what they decode to.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"delete\u005frepo"}}"#,
            403,
            "delete_repo",
        ),
        // A key twice: parsers disagree on which wins.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_x","name":"delete_repo"}}"#,
            400,
            "appears twice",
        ),
        ("not json", 400, "not well-formed JSON"),
        (
            r#"{"id":1,"method":"tools/call","params":{"name":"delete_repo"}}"#,
            400,
            "JSON-RPC 2.0",
        ),
        ("[]", 400, "empty batch"),
    ];
    for (body, status, needle) in cases {
        let got = post(&e, &[&s], body).await;
        assert_eq!(got.status, *status, "{body}: {}", got.body);
        assert!(got.body.contains(needle), "{body}: {}", got.body);
    }
    // Not JSON at all, or a body on a GET.
    let got = call(
        &e,
        "POST",
        "http://api.test/mcp",
        &[&s],
        &[("content-type", "text/plain")],
        "x",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
    let got = call(&e, "GET", "http://api.test/mcp", &[&s], &[], "{}").await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert_eq!(e.upstream.seen().len(), before);
    // GET (the server's event stream) and DELETE (end of session) without a body pass.
    for method in ["GET", "DELETE"] {
        let got = call(&e, method, "http://api.test/mcp", &[&s], &[], "").await;
        assert_eq!(got.status, 200, "{method}: {}", got.body);
    }
    // Other methods pass.
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    assert_eq!(post(&e, &[&s], init).await.status, 200);
}

/// A caller-sealed secret cannot widen the real secret's tools (every secret's patterns
/// must allow the tool), nor rename the tool after the check (the body is judged as
/// sent, after every processor).
#[tokio::test]
async fn a_second_secret_cannot_widen_or_rewrite_the_tools() {
    let e = env(&[]).await;
    let real = mcp(json!({}));
    let wide = caller_sealed(
        json!({"inject_processor": {"token": "x", "dst": "x-caller"}}),
        json!({"allowed_mcp_tools": ["*"]}),
    );
    let got = post(&e, &[&wide, &real], &tool_call(json!(1), "delete_repo")).await;
    assert_eq!(got.status, 403, "{}", got.body);
    let rewrite = caller_sealed(
        json!({"inject_body_processor": {"token": "delete_repo", "placeholder": "search_abcd"}}),
        json!({}),
    );
    for order in [[&real, &rewrite], [&rewrite, &real]] {
        let got = post(&e, &order, &tool_call(json!(1), "search_abcd")).await;
        assert_eq!(got.status, 403, "{}", got.body);
        assert!(got.body.contains("delete_repo"), "{}", got.body);
    }
}

#[tokio::test]
async fn other_rules_still_hold_and_an_empty_list_allows_no_tool() {
    let e = env(&[]).await;
    let s = mcp(json!({"allowed_paths": ["/mcp"]}));
    let got = call(
        &e,
        "POST",
        "http://api.test/other",
        &[&s],
        &[JSON],
        &tool_call(json!(1), "get_issue"),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
    let none = mcp(json!({"allowed_mcp_tools": []}));
    assert_eq!(
        post(&e, &[&none], &tool_call(json!(1), "get_issue"))
            .await
            .status,
        403
    );
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert_eq!(post(&e, &[&none], list).await.status, 200);
}

/// A body larger than `MAX_BUFFERED_BODY` cannot be judged whole: 413, and the server
/// never sees it.
#[tokio::test]
async fn a_body_too_large_to_judge_is_refused() {
    let e = env(&["--max-buffered-body", "4KiB"]).await;
    let s = mcp(json!({}));
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "search_issues", "arguments": {"q": "x".repeat(8192)}}});
    let before = e.upstream.seen().len();
    let got = post(&e, &[&s], &big.to_string()).await;
    assert_eq!(got.status, 413, "{}", got.body);
    assert_eq!(e.upstream.seen().len(), before);
}
