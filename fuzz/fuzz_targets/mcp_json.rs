//! An MCP JSON-RPC body (`allowed_mcp_tools`): `judge` never panics and, when it accepts a
//! body, every tool it lets through matches the patterns and every refused one does not;
//! a refusal answer is JSON-RPC; `filter_tools` over any JSON leaves only allowed tools
//! in the answers it touches.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenizer::policy::mcp::{McpToolPattern, allowed, filter_tools, judge, refusal};

fuzz_target!(|data: &[u8]| {
    let patterns = [
        McpToolPattern::new("search_*").expect("pattern"),
        McpToolPattern::new("get_issue").expect("pattern"),
    ];
    let rules: [&[McpToolPattern]; 1] = [&patterns];
    if let Ok(judged) = judge(data, &rules) {
        for tool in &judged.called {
            assert!(allowed(tool, &rules), "{tool:?} let through");
        }
        for call in &judged.refused {
            assert!(!allowed(&call.tool, &rules), "{:?} refused", call.tool);
        }
        if !judged.refused.is_empty() {
            let answer = refusal(&judged);
            assert!(answer.is_object() || answer.is_array());
        }
    }
    if let Ok(mut value) = serde_json::from_slice::<Value>(data) {
        let ids = [Value::from(1), Value::from("1")];
        filter_tools(&mut value, &ids, &rules);
    }
});
