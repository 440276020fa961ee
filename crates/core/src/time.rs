//! `not_before` / `expires_at`: unix seconds or RFC 3339 on the wire, unix seconds after.

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parse unix seconds (`1767225600`) or RFC 3339 (`2026-01-01T00:00:00Z`).
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("{text:?} is neither unix seconds nor RFC 3339"))
}

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// serde: a number or a string.
pub fn deserialize_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(i64),
        Text(String),
    }
    match Wire::deserialize(d)? {
        Wire::Number(n) => Ok(Some(n)),
        Wire::Text(t) => parse_timestamp(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(parse_timestamp("1767225600"), Ok(1_767_225_600));
        assert_eq!(parse_timestamp("2026-01-01T00:00:00Z"), Ok(1_767_225_600));
        assert_eq!(
            parse_timestamp("2026-01-01T01:00:00+01:00"),
            Ok(1_767_225_600)
        );
        assert!(parse_timestamp("tomorrow").is_err());
    }
}
