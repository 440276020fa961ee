//! What the client's own (dummy-key) SigV4 signature tells us: the signing time, region
//! and service to sign with, parsed the way the Go tokenizer parses them.

use http::HeaderMap;
use http::header;

use super::super::ProcessorError;

/// The signing parameters taken from the client's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientScope {
    /// `YYYYMMDD`.
    pub date: String,
    /// `HHMMSS`.
    pub time: String,
    pub region: String,
    pub service: String,
}

// === impl ClientScope ===

impl ClientScope {
    /// Parse the first `Credential=AK/DATE/P2/P3/aws4_request` of `Authorization` (split
    /// on spaces, trailing commas stripped) and an optional `X-Amz-Date` override.
    /// `no_swap` → region P2, service P3; otherwise (Go's bug-compatible default) the two
    /// are exchanged.
    pub fn parse(headers: &HeaderMap, no_swap: bool) -> Result<Self, ProcessorError> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map_err(|_| bad("bad Authorization header")))
            .transpose()?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("expected request to contain an Authorization header"))?;

        let mut scope = None;
        for section in auth.split(' ') {
            let Some(("Credential", value)) = section.trim_end_matches(',').split_once('=') else {
                continue;
            };
            let parts: Vec<&str> = value.split('/').collect();
            let [_, date, p2, p3, _] = parts[..] else {
                return Err(bad("invalid credential in auth header"));
            };
            let date = parse_date(date).ok_or_else(|| bad("bad date in auth header"))?;
            let (region, service) = if no_swap { (p2, p3) } else { (p3, p2) };
            scope = Some(Self {
                date: date.to_owned(),
                time: "000000".to_owned(),
                region: region.to_owned(),
                service: service.to_owned(),
            });
            break;
        }

        // An empty X-Amz-Date is Go's `Header.Get` returning "": no override.
        let amz_date = headers
            .get("x-amz-date")
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(parse_amz_date)
                    .ok_or_else(|| bad("bad X-Amz-Date header"))
            })
            .transpose()?;
        let Some(mut scope) = scope else {
            return Err(invalid());
        };
        if let Some((date, time)) = amz_date {
            scope.date = date.to_owned();
            scope.time = time.to_owned();
        }
        // Go's `time.Time.IsZero`: the first instant of year 1.
        let zero = scope.date == "00010101" && scope.time == "000000";
        if scope.region.is_empty() || scope.service.is_empty() || zero {
            return Err(invalid());
        }
        Ok(scope)
    }

    /// `YYYYMMDDTHHMMSSZ`.
    pub fn amz_date(&self) -> String {
        format!("{}T{}Z", self.date, self.time)
    }
}

fn bad(msg: &str) -> ProcessorError {
    ProcessorError::BadRequest(msg.to_owned())
}

fn invalid() -> ProcessorError {
    bad("expected valid sigv4 authentication header in request to tokenizer")
}

/// A valid calendar day written `YYYYMMDD`.
fn parse_date(text: &str) -> Option<&str> {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if text.len() != 8 || !digits(text) {
        return None;
    }
    let year: i32 = text[..4].parse().ok()?;
    let month: u8 = text[4..6].parse().ok()?;
    let day: u8 = text[6..].parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    time::Date::from_calendar_date(year, month, day).ok()?;
    Some(text)
}

/// A valid `YYYYMMDDTHHMMSSZ`, split into its date and time digits.
fn parse_amz_date(text: &str) -> Option<(&str, &str)> {
    let (date, rest) = text.split_at_checked(8)?;
    let time = rest.strip_prefix('T')?.strip_suffix('Z')?;
    parse_date(date)?;
    if time.len() != 6 || !time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let [h, m, s] = [&time[..2], &time[2..4], &time[4..]].map(|n| n.parse::<u8>().ok());
    time::Time::from_hms(h?, m?, s?).ok()?;
    Some((date, time))
}
