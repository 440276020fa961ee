//! `allowed_mcp_tools`: which MCP tools a request made with the secret may call.
//!
//! A remote MCP server (streamable HTTP) takes JSON-RPC 2.0 messages in POST bodies: one
//! message or a batch. For a secret that carries the rule, the body is read exactly as
//! the server will read it — decoded JSON, so `"tools\/call"` and `"\u005f"` mean what
//! they decode to — and refused when it is not well-formed JSON-RPC, when a key appears
//! twice in one object (JSON parsers disagree on which one wins), or when it holds a
//! `tools/call` whose `params.name` matches no pattern. Other methods pass: they list,
//! read or negotiate (`initialize`, `tools/list`, `resources/*`, `prompts/*`,
//! `ping`, notifications, responses to the server's own requests) and run no tool;
//! `tools/list` answers are filtered instead ([`filter_tools`]), so the agent never
//! learns of a tool it may not call.
//!
//! Patterns are globs over the whole name: `*` matches any run of characters
//! (`search_*`, `*_issue`, `*`).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use tokenizer_core::glob::Glob;

/// The method that runs a tool.
pub const TOOLS_CALL: &str = "tools/call";
/// The method whose answer lists the tools.
pub const TOOLS_LIST: &str = "tools/list";

/// One `allowed_mcp_tools` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpToolPattern(Glob);

impl McpToolPattern {
    /// A pattern such as `search_*`.
    pub fn new(text: &str) -> Result<Self, String> {
        Glob::new(text, None).map(Self)
    }

    /// Does the pattern match the whole tool name?
    pub fn matches(&self, name: &str) -> bool {
        self.0.matches(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Serialize for McpToolPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for McpToolPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(&text).map_err(de::Error::custom)
    }
}

/// Is `name` allowed by every secret's patterns (one list per secret with the rule)?
pub fn allowed(name: &str, rules: &[&[McpToolPattern]]) -> bool {
    rules.iter().all(|set| set.iter().any(|p| p.matches(name)))
}

/// Why a body is not one the rule can judge (fixed texts).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// Not JSON, a key twice in one object, or too deep.
    #[error("mcp: the body is not well-formed JSON ({0})")]
    Json(String),
    /// JSON, but not JSON-RPC 2.0 as MCP sends it.
    #[error("mcp: not a JSON-RPC 2.0 message ({0})")]
    NotJsonRpc(&'static str),
}

/// A refused `tools/call`: its id (`null` for a notification) and the tool's name.
#[derive(Clone, Debug, PartialEq)]
pub struct RefusedCall {
    /// The request's `id`, as sent.
    pub id: Value,
    /// The tool it would run.
    pub tool: String,
}

/// What a body holds, judged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Judged {
    /// Tools called and allowed.
    pub called: Vec<String>,
    /// Calls no pattern allows: the request must not go on.
    pub refused: Vec<RefusedCall>,
    /// The ids of `tools/list` requests, whose answers must be filtered.
    pub lists: Vec<Value>,
    /// The ids of every request in the body (for a batch refused whole).
    pub ids: Vec<Value>,
    /// A batch (the refusal is a batch too).
    pub batch: bool,
}

/// Judge a POST body against every secret's patterns.
pub fn judge(body: &[u8], rules: &[&[McpToolPattern]]) -> Result<Judged, McpError> {
    let Strict(value) = serde_json::from_slice(body).map_err(|e| {
        // The category only: the message could quote the body.
        McpError::Json(match e.classify() {
            serde_json::error::Category::Data if e.to_string().contains("duplicate") => {
                "a key appears twice".to_owned()
            }
            serde_json::error::Category::Syntax if e.to_string().contains("recursion") => {
                "nested too deeply".to_owned()
            }
            c => format!("{c:?}").to_lowercase(),
        })
    })?;
    let (messages, batch) = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(McpError::NotJsonRpc("an empty batch"));
        }
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    let mut judged = Judged {
        batch,
        ..Judged::default()
    };
    for message in &messages {
        judge_message(message, rules, &mut judged)?;
    }
    Ok(judged)
}

fn judge_message(
    message: &Value,
    rules: &[&[McpToolPattern]],
    judged: &mut Judged,
) -> Result<(), McpError> {
    let Value::Object(m) = message else {
        return Err(McpError::NotJsonRpc("a message that is not an object"));
    };
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(McpError::NotJsonRpc("no \"jsonrpc\": \"2.0\""));
    }
    let id = m.get("id");
    if let Some(id) = id
        && !matches!(id, Value::String(_) | Value::Number(_))
    {
        return Err(McpError::NotJsonRpc("an id that is not a string or number"));
    }
    let Some(method) = m.get("method") else {
        // A response to the server's own request (sampling, elicitation, roots).
        if id.is_some() && (m.contains_key("result") || m.contains_key("error")) {
            return Ok(());
        }
        return Err(McpError::NotJsonRpc("neither a request nor a response"));
    };
    let Value::String(method) = method else {
        return Err(McpError::NotJsonRpc("a method that is not a string"));
    };
    if let Some(id) = id {
        judged.ids.push(id.clone());
    }
    match method.as_str() {
        TOOLS_CALL => {
            let name = m
                .get("params")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .ok_or(McpError::NotJsonRpc("tools/call without params.name"))?;
            if allowed(name, rules) {
                judged.called.push(name.to_owned());
            } else {
                judged.refused.push(RefusedCall {
                    id: id.cloned().unwrap_or(Value::Null),
                    tool: name.to_owned(),
                });
            }
        }
        TOOLS_LIST => {
            if let Some(id) = id {
                judged.lists.push(id.clone());
            }
        }
        _ => {}
    }
    Ok(())
}

/// The JSON-RPC error answer to a refused body: one error per request that had an id
/// (the refused calls say which tool; the others that their batch was refused), an
/// array for a batch.
pub fn refusal(judged: &Judged) -> Value {
    let error = |id: &Value, message: String| {
        serde_json::json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": REFUSED_CODE, "message": message}})
    };
    let refused_message = |tool: &str| format!("tool {tool:?} is not allowed by this credential");
    if !judged.batch {
        let call = judged.refused.first();
        return error(
            call.map_or(&Value::Null, |c| &c.id),
            call.map_or_else(String::new, |c| refused_message(&c.tool)),
        );
    }
    let mut out: Vec<Value> = judged
        .refused
        .iter()
        .map(|c| error(&c.id, refused_message(&c.tool)))
        .collect();
    for id in &judged.ids {
        if !judged.refused.iter().any(|c| &c.id == id) {
            out.push(error(
                id,
                "refused: the batch calls a tool this credential does not allow".to_owned(),
            ));
        }
    }
    Value::Array(out)
}

/// The JSON-RPC error code of a refused call (implementation-defined server error).
pub const REFUSED_CODE: i64 = -32001;

/// Remove the tools no secret's patterns allow from `message` (a JSON-RPC response, or a
/// batch of them) when it answers one of the `tools/list` requests in `lists`. Returns
/// how many were removed.
pub fn filter_tools(message: &mut Value, lists: &[Value], rules: &[&[McpToolPattern]]) -> usize {
    match message {
        Value::Array(items) => items
            .iter_mut()
            .map(|m| filter_tools(m, lists, rules))
            .sum(),
        Value::Object(m) => {
            if !m.get("id").is_some_and(|id| lists.contains(id)) {
                return 0;
            }
            let Some(Value::Array(tools)) = m
                .get_mut("result")
                .and_then(Value::as_object_mut)
                .and_then(|r| r.get_mut("tools"))
            else {
                return 0;
            };
            let before = tools.len();
            tools.retain(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| allowed(name, rules))
            });
            before - tools.len()
        }
        _ => 0,
    }
}

/// A JSON value that refuses a key twice in one object; depth is bounded by
/// `serde_json`'s recursion limit (128).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Vec<McpToolPattern> {
        ["search_*", "get_issue"]
            .iter()
            .map(|p| McpToolPattern::new(p).unwrap())
            .collect()
    }

    fn run(body: &str) -> Result<Judged, McpError> {
        let r = rules();
        judge(body.as_bytes(), &[&r])
    }

    fn call(id: Value, name: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": name, "arguments": {}}})
    }

    #[test]
    fn allowed_and_refused_calls() {
        let ok = run(&call(json!(1), "search_issues").to_string()).unwrap();
        assert_eq!(ok.called, ["search_issues"]);
        assert!(ok.refused.is_empty());
        let no = run(&call(json!("a"), "delete_repo").to_string()).unwrap();
        assert_eq!(
            no.refused,
            [RefusedCall {
                id: json!("a"),
                tool: "delete_repo".into()
            }]
        );
        let answer = refusal(&no);
        assert_eq!(answer["id"], "a");
        assert_eq!(answer["error"]["code"], REFUSED_CODE);
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("delete_repo")
        );
        // A notification runs no less than a request: judged too, id null.
        let note = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "rm"}});
        let j = run(&note.to_string()).unwrap();
        assert_eq!(j.refused[0].id, Value::Null);
    }

    #[test]
    fn escapes_mean_what_they_decode_to() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"delete\u005frepo"}}"#;
        assert_eq!(run(body).unwrap().refused[0].tool, "delete_repo");
        let list = r#"{"jsonrpc":"2.0","id":7,"method":"tools\u002flist"}"#;
        assert_eq!(run(list).unwrap().lists, [json!(7)]);
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_x","name":"delete_repo"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_x","nam\u0065":"d"}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":{"b":1,"b":2}}}]"#,
        ] {
            let err = run(body).unwrap_err();
            assert_eq!(err, McpError::Json("a key appears twice".into()), "{body}");
        }
    }

    #[test]
    fn a_batch_with_one_refused_call_is_refused_whole() {
        let body = json!([
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            call(json!(1), "search_issues"),
            call(json!(2), "delete_repo"),
            {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        ]);
        let j = run(&body.to_string()).unwrap();
        assert!(j.batch);
        assert_eq!(j.refused.len(), 1);
        let answer = refusal(&j);
        let answers = answer.as_array().unwrap();
        assert_eq!(
            answers.len(),
            3,
            "one error per request with an id: {answer}"
        );
        assert!(answers.iter().all(|a| a["error"]["code"] == REFUSED_CODE));
        assert!(answers.iter().any(|a| {
            a["id"] == 2
                && a["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("delete_repo")
        }));
    }

    #[test]
    fn what_is_not_json_rpc_is_refused() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for body in [
            "",
            "not json",
            "[]",
            "[1]",
            r#"{"id":1,"method":"tools/call","params":{"name":"search_x"}}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            &deep,
        ] {
            assert!(run(body).is_err(), "{body:?}");
        }
        // Messages for other methods, and responses to the server's requests, pass.
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":"s1","result":{"content":[]}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"x"}}"#,
        ] {
            let j = run(body).unwrap();
            assert!(j.refused.is_empty(), "{body}");
        }
    }

    #[test]
    fn tools_list_answers_lose_the_tools_not_allowed() {
        let r = rules();
        let mut answer = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [
            {"name": "search_issues"}, {"name": "delete_repo"}, {"name": "get_issue"},
            {"nameless": true}
        ]}});
        assert_eq!(filter_tools(&mut answer, &[json!(3)], &[&r]), 2);
        let names: Vec<&str> = answer["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["search_issues", "get_issue"]);
        // Only answers to the listed ids are touched.
        let mut other = json!({"jsonrpc": "2.0", "id": 4, "result": {"tools": [{"name": "x"}]}});
        assert_eq!(filter_tools(&mut other, &[json!(3)], &[&r]), 0);
        // Every secret's patterns apply.
        let narrow = [McpToolPattern::new("get_*").unwrap()];
        let mut batch = json!([{"jsonrpc": "2.0", "id": "l", "result": {"tools": [
            {"name": "search_issues"}, {"name": "get_issue"}]}}]);
        assert_eq!(filter_tools(&mut batch, &[json!("l")], &[&r, &narrow]), 1);
        assert_eq!(batch[0]["result"]["tools"], json!([{"name": "get_issue"}]));
    }
}
