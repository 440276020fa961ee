//! A client for an admin listener (`--admin-address`): health, metrics, audit, seal.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::poll::poll_until;

/// An admin listener, reached directly (never through a proxy).
pub struct Admin {
    /// `http://ADDR`.
    pub base: String,
    pub http: reqwest::Client,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Self {
        super::init();
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// Send `Authorization: Bearer TOKEN` (`--admin-token`) with every request.
    pub fn with_token(mut self, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        self.http = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .unwrap();
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// Status and text of `GET path`.
    pub async fn text(&self, path: &str) -> (u16, String) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// Status and JSON body (`null` when not JSON) of `GET path`.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.text("/metrics").await.1
    }

    /// `/v1/audit?QUERY` once it lists at least `n` entries. Entries are recorded when a
    /// response body ends, a moment after the client has it: poll for up to 10 s.
    pub async fn audit(&self, query: &str, n: usize) -> Vec<Value> {
        let path = format!("/v1/audit?{query}");
        poll_until(Duration::from_secs(10), || async {
            let (status, body) = self.get_json(&path).await;
            assert_eq!(status, 200, "{body}");
            let entries = body["entries"].as_array().unwrap().clone();
            (entries.len() >= n).then_some(entries)
        })
        .await
        .unwrap_or_else(|| panic!("fewer than {n} audit entries for {query}"))
    }
}
