//! The last N audit entries, bounded whatever the traffic, and the `/v1/audit` filter.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Deserialize;

use super::entry::AuditEntry;

/// The last N audit entries, oldest dropped first (`AUDIT_RING_SIZE`).
pub struct AuditRing {
    entries: Mutex<VecDeque<AuditEntry>>,
    capacity: usize,
}

/// `/v1/audit` query: every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Exact host.
    pub host: Option<String>,
    /// Exact status, or a class such as `4xx`.
    pub status: Option<String>,
    /// `allowed`, `denied`, `rate-limited`, …
    pub decision: Option<String>,
    /// A secret id or digest prefix, as in `secret_ids` (`id:` may be omitted).
    pub secret: Option<String>,
    /// `serve` or `sideproxy`.
    pub role: Option<String>,
    /// Unix seconds or RFC 3339: entries at or after.
    pub since: Option<String>,
    /// Unix seconds or RFC 3339: entries before.
    pub until: Option<String>,
    /// At most this many, newest first (default 100).
    pub limit: Option<usize>,
}

impl AuditRing {
    /// A ring keeping the last `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
        }
    }

    /// Keep `entry`, dropping the oldest when full.
    pub fn push(&self, entry: AuditEntry) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// No entry is held yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Matching entries, newest first.
    pub fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, String> {
        let since = q.since.as_deref().map(to_ms).transpose()?;
        let until = q.until.as_deref().map(to_ms).transpose()?;
        let status = q.status.as_deref().map(parse_status).transpose()?;
        let limit = q.limit.unwrap_or(100).min(self.capacity);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries
            .iter()
            .rev()
            .filter(|e| q.host.as_ref().is_none_or(|h| e.host == *h))
            .filter(|e| q.role.as_ref().is_none_or(|r| e.role == r))
            .filter(|e| q.decision.as_ref().is_none_or(|d| e.decision.as_str() == d))
            .filter(|e| status.is_none_or(|(lo, hi)| (lo..=hi).contains(&e.status)))
            .filter(|e| {
                q.secret.as_ref().is_none_or(|s| {
                    e.secret_ids.iter().any(|id| {
                        id == s || id.strip_prefix("id:") == Some(s) || id.starts_with(s.as_str())
                    })
                })
            })
            .filter(|e| since.is_none_or(|t| e.unix_ms >= t))
            .filter(|e| until.is_none_or(|t| e.unix_ms < t))
            .take(limit)
            .cloned()
            .collect())
    }
}

fn to_ms(text: &str) -> Result<i64, String> {
    tokenizer_core::time::parse_timestamp(text).map(|s| s * 1000)
}

/// `404` → (404, 404); `4xx` → (400, 499).
fn parse_status(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("status {text:?}: want e.g. 404 or 4xx");
    if let Some(class) = text.strip_suffix("xx") {
        let c: u16 = class.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&c) {
            return Err(bad());
        }
        return Ok((c * 100, c * 100 + 99));
    }
    let s: u16 = text.parse().map_err(|_| bad())?;
    Ok((s, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Decision;

    fn entry(host: &str, status: u16, decision: Decision, ms: i64) -> AuditEntry {
        AuditEntry {
            timestamp: String::new(),
            unix_ms: ms,
            role: "serve",
            mode: "",
            source: "127.0.0.1:1".into(),
            flysrc: String::new(),
            identity: String::new(),
            method: "GET".into(),
            host: host.into(),
            path: "/".into(),
            query_keys: String::new(),
            connect_host: String::new(),
            status,
            decision,
            reason: String::new(),
            secret_ids: vec!["id:k1".into()],
            secrets: String::new(),
            processors: 1,
            request_bytes: 0,
            response_bytes: 0,
            upstream_ms: None,
            total_ms: 1.0,
            reflections: 0,
            pii: vec![],
            mcp_tools: vec![],
        }
    }

    #[test]
    fn bounded_and_filtered_newest_first() {
        let ring = AuditRing::new(3);
        for i in 0..5 {
            ring.push(entry(
                &format!("h{i}"),
                200 + i as u16,
                Decision::Allowed,
                i * 1000,
            ));
        }
        assert_eq!(ring.len(), 3);
        let all = ring.query(&AuditQuery::default()).unwrap();
        assert_eq!(
            all.iter().map(|e| e.host.as_str()).collect::<Vec<_>>(),
            ["h4", "h3", "h2"]
        );
        let q = AuditQuery {
            status: Some("2xx".into()),
            since: Some("3".into()),
            ..Default::default()
        };
        assert_eq!(ring.query(&q).unwrap().len(), 2);
        let q = AuditQuery {
            secret: Some("k1".into()),
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(ring.query(&q).unwrap().len(), 1);
        let q = AuditQuery {
            decision: Some("denied".into()),
            ..Default::default()
        };
        assert!(ring.query(&q).unwrap().is_empty());
        assert!(
            ring.query(&AuditQuery {
                status: Some("9xx".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
