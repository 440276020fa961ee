//! `allowed_mcp_tools` at work (see [`tokenizer_secret::policy::mcp`]): with a secret
//! that carries the rule, a POST body is read (within `MAX_BUFFERED_BODY` and the
//! budget) and judged as MCP JSON-RPC as it will be sent, after every processor; a call
//! of a tool no pattern allows is answered 403 with a JSON-RPC error carrying the
//! request's id, before anything reaches the server. The answers to `tools/list` come
//! back without the tools the seal does not allow: a JSON answer is read and rewritten
//! whole, a `text/event-stream` answer event by event as it streams (an event is held
//! only until its blank line, at most `MAX_BUFFERED_BODY`; a longer one is dropped).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response};
use serde_json::Value;

use super::Proxy;
use super::prepare::Prepared;
use crate::proxy::error::ProxyError;
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_http::body::{self, Body, Read, Transform, TransformBody, read_bounded};
use tokenizer_net::upstream::UpstreamError;
use tokenizer_secret::policy::PolicyError;
use tokenizer_secret::policy::mcp::{self, McpError, McpToolPattern};

/// What the response needs: the ids of the `tools/list` requests it answers.
#[derive(Default)]
pub struct ToolLists(Vec<Value>);

/// Judge the request; refuse a call no pattern allows. Requests other than POST pass
/// when they carry no body (GET opens the server's event stream, DELETE ends a
/// session).
pub async fn judge(
    proxy: &Proxy,
    prepared: &Prepared,
    parts: &mut Parts,
    body: Body,
    log: &mut RequestLog,
) -> Result<(Body, ToolLists), ProxyError> {
    if prepared.mcp_tools.is_empty() {
        return Ok((body, ToolLists::default()));
    }
    let refuse =
        |why: &'static str| -> ProxyError { PolicyError::Mcp(McpError::NotJsonRpc(why)).into() };
    if parts.method != Method::POST {
        if has_body(&parts.headers) {
            return Err(refuse("a body on a request other than POST"));
        }
        return Ok((body, ToolLists::default()));
    }
    if !is_json(&parts.headers) {
        return Err(refuse("a POST body that is not application/json"));
    }
    let buffered = proxy.read_whole(&parts.headers, body).await?;
    let sets: Vec<&[McpToolPattern]> = prepared.mcp_tools.iter().map(Vec::as_slice).collect();
    let judged = mcp::judge(&buffered.bytes, &sets).map_err(PolicyError::Mcp)?;
    log.set_mcp_tools(
        judged
            .called
            .iter()
            .cloned()
            .chain(judged.refused.iter().map(|c| c.tool.clone())),
    );
    if !judged.refused.is_empty() {
        let names: Vec<String> = judged
            .refused
            .iter()
            .map(|c| format!("{:?}", c.tool.chars().take(100).collect::<String>()))
            .collect();
        return Err(ProxyError::McpRefused(
            mcp::refusal(&judged),
            names.join(", "),
        ));
    }
    if !judged.lists.is_empty() {
        // The answer must be one this proxy can read to filter it.
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    parts
        .headers
        .insert(header::CONTENT_LENGTH, buffered.bytes.len().into());
    parts.headers.remove(header::TRANSFER_ENCODING);
    Ok((buffered.into_body(), ToolLists(judged.lists)))
}

/// The response, with the tools the seal does not allow removed from `tools/list`
/// answers.
pub async fn filter(
    proxy: &Proxy,
    prepared: &Prepared,
    lists: ToolLists,
    response: Response<Body>,
) -> Result<Response<Body>, ProxyError> {
    if lists.0.is_empty() {
        return Ok(response);
    }
    let unreadable = |why: &str| {
        ProxyError::Upstream(UpstreamError::Failed(format!(
            "the MCP server's tools/list answer {why}"
        )))
    };
    let encoded = tokenizer_http::headers::has_content_coding(response.headers());
    let kind = essence(response.headers());
    if encoded && (kind == "application/json" || kind == "text/event-stream") {
        return Err(unreadable("is compressed"));
    }
    let rules = prepared.mcp_tools.clone();
    match kind.as_str() {
        "application/json" => {
            let (mut head, body) = response.into_parts();
            let read = read_bounded(
                body,
                proxy.config().max_buffered_body,
                None,
                proxy.budget(),
                false,
                |_| {},
            )
            .await
            .map_err(|_| unreadable("is too large or broken"))?;
            let Read::Complete(buffered) = read else {
                return Err(unreadable("is too large"));
            };
            let mut value: Value =
                serde_json::from_slice(&buffered.bytes).map_err(|_| unreadable("is not JSON"))?;
            let sets: Vec<&[McpToolPattern]> = rules.iter().map(Vec::as_slice).collect();
            if mcp::filter_tools(&mut value, &lists.0, &sets) == 0 {
                return Ok(Response::from_parts(head, buffered.into_body()));
            }
            let bytes = Bytes::from(value.to_string());
            head.headers
                .insert(header::CONTENT_LENGTH, bytes.len().into());
            head.headers.remove(header::TRANSFER_ENCODING);
            Ok(Response::from_parts(
                head,
                buffered.replace(bytes).into_body(),
            ))
        }
        "text/event-stream" => {
            let (mut head, body) = response.into_parts();
            head.headers.remove(header::CONTENT_LENGTH);
            let events = SseToolFilter {
                lists: lists.0,
                rules,
                limit: proxy.config().max_buffered_body,
                buf: Vec::new(),
                scanned: 0,
                line_start: 0,
                dropping: false,
            };
            Ok(Response::from_parts(
                head,
                body::boxed(TransformBody::new(body, events)),
            ))
        }
        _ => Ok(response),
    }
}

/// Filters `tools/list` answers out of a server-sent event stream, one event at a time.
struct SseToolFilter {
    lists: Vec<Value>,
    rules: Vec<Vec<McpToolPattern>>,
    limit: usize,
    /// The event being read (from its first byte).
    buf: Vec<u8>,
    /// How far `buf` has been searched for line ends.
    scanned: usize,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// The event grew past `limit`: dropped up to its end.
    dropping: bool,
}

impl SseToolFilter {
    /// The event as it goes on: rewritten when it answers a `tools/list` and loses tools.
    fn event(&self, event: Vec<u8>) -> Vec<u8> {
        let Ok(text) = std::str::from_utf8(&event) else {
            return event;
        };
        let mut data: Vec<&str> = Vec::new();
        let mut others: Vec<&str> = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("data:") {
                Some(d) => data.push(d.strip_prefix(' ').unwrap_or(d)),
                None if !line.is_empty() => others.push(line),
                None => {}
            }
        }
        if data.is_empty() {
            return event;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(&data.join("\n")) else {
            return event;
        };
        let sets: Vec<&[McpToolPattern]> = self.rules.iter().map(Vec::as_slice).collect();
        if mcp::filter_tools(&mut value, &self.lists, &sets) == 0 {
            return event;
        }
        let mut out = String::new();
        for line in others {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&value.to_string());
        out.push_str("\n\n");
        out.into_bytes()
    }
}

impl Transform for SseToolFilter {
    fn push(&mut self, data: Bytes) -> Bytes {
        self.buf.extend_from_slice(&data);
        let mut out = Vec::new();
        while let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            let end = self.scanned + i;
            let line = &self.buf[self.line_start..end];
            let blank = line.is_empty() || line == b"\r";
            self.scanned = end + 1;
            self.line_start = end + 1;
            if blank {
                let event: Vec<u8> = self.buf.drain(..=end).collect();
                self.scanned = 0;
                self.line_start = 0;
                if std::mem::take(&mut self.dropping) {
                    continue;
                }
                out.extend(self.event(event));
            }
        }
        if self.buf.len() > self.limit {
            self.buf.clear();
            self.scanned = 0;
            self.line_start = 0;
            self.dropping = true;
        }
        Bytes::from(out)
    }

    fn finish(&mut self) -> Bytes {
        if self.dropping || self.buf.is_empty() {
            return Bytes::new();
        }
        let rest = std::mem::take(&mut self.buf);
        Bytes::from(self.event(rest))
    }
}

/// The media type, lower case, without parameters.
fn essence(headers: &http::HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `application/json` or `…+json`, and only one Content-Type.
fn is_json(headers: &http::HeaderMap) -> bool {
    if headers.get_all(header::CONTENT_TYPE).iter().count() != 1 {
        return false;
    }
    let encoded = tokenizer_http::headers::has_content_coding(headers);
    let kind = essence(headers);
    !encoded && (kind == "application/json" || kind.ends_with("+json"))
}

/// Does the request carry a body (a length above zero, or a transfer coding)?
fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || tokenizer_http::headers::content_length(headers).is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter_of(lists: Vec<Value>) -> SseToolFilter {
        SseToolFilter {
            lists,
            rules: vec![vec![McpToolPattern::new("search_*").unwrap()]],
            limit: 4096,
            buf: Vec::new(),
            scanned: 0,
            line_start: 0,
            dropping: false,
        }
    }

    fn run(f: &mut SseToolFilter, stream: &[u8], step: usize) -> String {
        let mut out = Vec::new();
        for chunk in stream.chunks(step) {
            out.extend_from_slice(&f.push(Bytes::copy_from_slice(chunk)));
        }
        out.extend_from_slice(&f.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn events_split_across_chunks_are_filtered_whole() {
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "search_issues"}, {"name": "delete_repo"}]}});
        let stream = format!(
            "event: message\r\nid: e1\r\ndata: {answer}\r\n\r\n: keep-alive\n\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\n"
        );
        for step in [1, 2, 7, 64, stream.len()] {
            let out = run(&mut filter_of(vec![json!(1)]), stream.as_bytes(), step);
            assert!(!out.contains("delete_repo"), "{step}: {out}");
            assert!(out.contains("search_issues"), "{step}: {out}");
            assert!(
                out.contains("event: message\nid: e1\ndata: {"),
                "{step}: {out}"
            );
            assert!(out.contains(": keep-alive\n\n"), "{step}: {out}");
            assert!(out.contains("notifications/progress"), "{step}: {out}");
        }
    }

    #[test]
    fn data_over_several_lines_and_other_ids_pass_untouched() {
        let stream = "data: {\"jsonrpc\":\"2.0\",\"id\":2,\ndata: \"result\":{\"tools\":[{\"name\":\"delete_repo\"}]}}\n\n";
        // An answer to another request is passed byte for byte.
        let out = run(&mut filter_of(vec![json!(1)]), stream.as_bytes(), 5);
        assert_eq!(out, stream);
        // Its own id: the joined data lines are read as one JSON text.
        let out = run(&mut filter_of(vec![json!(2)]), stream.as_bytes(), 5);
        assert!(!out.contains("delete_repo"), "{out}");
    }

    #[test]
    fn an_event_over_the_limit_is_dropped_and_the_stream_goes_on() {
        let big = format!("data: {}\n\n", "x".repeat(10_000));
        let stream = format!("{big}data: after\n\n");
        let out = run(&mut filter_of(vec![json!(1)]), stream.as_bytes(), 100);
        assert_eq!(out, "data: after\n\n");
    }
}
