//! What the fake API servers received (fake_api.py's log), and the checks on it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::ANTHROPIC;

/// One request as fake_api.py recorded it.
#[derive(Debug)]
pub struct Request {
    pub host: String,
    pub method: String,
    pub path: String,
    pub stream: bool,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn user_agent(&self) -> &str {
        self.header("user-agent").unwrap_or("")
    }
}

pub fn read_requests(log: &Path) -> Vec<Request> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| {
            let doc: Value = serde_json::from_str(l).unwrap();
            Request {
                host: doc["host"].as_str().unwrap().to_owned(),
                method: doc["method"].as_str().unwrap().to_owned(),
                path: doc["path"].as_str().unwrap().to_owned(),
                stream: doc["stream"].as_bool().unwrap(),
                headers: doc["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap().to_owned(),
                            h[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Every request carried exactly the real credential, once, in the header its host's
/// secret injects; no dummy key (the sidecar strips the clients' own credential
/// headers), proxy header, caller token or sealed secret reached an API.
pub fn check_requests(
    requests: &[Request],
    expected: &BTreeMap<&str, String>,
    never: &[&str],
    sealed: &[&String],
) {
    assert!(!requests.is_empty(), "the fake servers saw no request");
    for r in requests {
        let what = format!("{} {}{} ({})", r.method, r.host, r.path, r.user_agent());
        let want = expected
            .get(r.host.as_str())
            .unwrap_or_else(|| panic!("a request for an unknown host: {r:?}"));
        let injected = if r.host == ANTHROPIC {
            "x-api-key"
        } else {
            "authorization"
        };
        let values: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k == injected)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            values,
            [want.as_str()],
            "{what} did not arrive with exactly the real key in {injected}"
        );
        for (k, v) in &r.headers {
            assert!(!k.starts_with("proxy-"), "{k} reached the API: {what}");
            for s in never
                .iter()
                .copied()
                .chain(sealed.iter().map(|s| s.as_str()))
            {
                assert!(
                    !v.contains(s),
                    "{k} carried a proxy secret to the API: {what}"
                );
            }
            assert!(
                !v.to_ascii_lowercase().contains("dummy"),
                "a dummy key reached the API in {k}: {what}"
            );
        }
    }
}
