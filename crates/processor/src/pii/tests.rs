use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http::HeaderValue;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::*;

// === helpers ===

/// The matched texts and kinds in `text`.
fn hits(text: &str, kinds: KindSet) -> Vec<(PiiKind, &str)> {
    find(text.as_bytes(), kinds)
        .into_iter()
        .map(|m| (m.kind, &text[m.range]))
        .collect()
}

/// The texts matched as `kind` (only that kind enabled).
fn only(kind: PiiKind, text: &str) -> Vec<String> {
    hits(text, KindSet::empty().with(kind))
        .into_iter()
        .map(|(_, s)| s.to_owned())
        .collect()
}

fn redact_all(text: &str) -> String {
    let findings = Findings::default();
    let out = detect::redact(text.as_bytes(), KindSet::all(), &findings);
    String::from_utf8(out.unwrap_or_else(|| text.as_bytes().to_vec())).unwrap()
}

type Chunks = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn chunked(chunks: &[&[u8]]) -> Chunks {
    let frames: Vec<_> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(stream::iter(frames))
}

fn chunked_body(chunks: &[&[u8]]) -> tokenizer_http::body::Body {
    tokenizer_http::body::boxed(chunked(chunks))
}

/// Stream `chunks` through a [`RedactBody`], checking the carry bound after each frame.
async fn stream_redact(chunks: &[&[u8]]) -> (String, Arc<Findings>) {
    let findings = Arc::new(Findings::default());
    let mut body = redact_body(chunked(chunks), KindSet::all(), findings.clone());
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        out.extend_from_slice(&frame.unwrap().into_data().unwrap());
        assert!(body.transform().carry_len() <= MAX_CARRY);
    }
    (String::from_utf8(out).unwrap(), findings)
}

async fn collect(body: tokenizer_http::body::Body) -> Vec<u8> {
    body.collect().await.unwrap().to_bytes().to_vec()
}

const JSON: &str = "application/json";

async fn run_inspect(
    body: &str,
    content_type: Option<&str>,
    policy: PiiPolicy,
    max: usize,
) -> Result<(String, Option<u64>, Arc<Findings>), PiiError> {
    let ct = content_type.map(|c| HeaderValue::from_str(c).unwrap());
    let len = Some(body.len() as u64);
    let body = tokenizer_http::body::full(body.to_owned());
    let inspected = inspect(body, ct.as_ref(), len, &policy, max, &test_budget()).await?;
    let out = String::from_utf8(collect(inspected.body).await).unwrap();
    Ok((out, inspected.content_length, inspected.findings))
}

fn redact_policy() -> PiiPolicy {
    PiiPolicy::new(PiiAction::Redact, KindSet::all())
}

fn block_policy() -> PiiPolicy {
    PiiPolicy::new(PiiAction::Block, KindSet::all())
}

/// A text with one of each kind, for chunking tests.
const SAMPLE: &str = "From jane.doe@example.com: card 4111 1111 1111 1111, ssn 123-45-6789, \
     call (415) 555-0100 or +44 20 7946 0958, key ghp_abcdefghijklmnopqrstuvwxyz0123456789. \
     Version 2.4.1 on 2026-11-24, id 12345678901234567890. Bye.";

const SAMPLE_REDACTED: &str = "From [REDACTED]: card [REDACTED], ssn [REDACTED], \
     call [REDACTED] or [REDACTED], key [REDACTED]. \
     Version 2.4.1 on 2026-11-24, id 12345678901234567890. Bye.";

// === kinds, actions, policies ===

#[test]
fn kind_sets_parse_and_serialize_as_lists_of_names() {
    let set = KindSet::parse("email, ssn").unwrap();
    assert!(set.contains(PiiKind::Email) && set.contains(PiiKind::Ssn));
    assert!(!set.contains(PiiKind::Phone));
    assert_eq!(set.to_string(), "email,ssn");
    assert_eq!(KindSet::parse("all").unwrap(), KindSet::all());
    assert_eq!(
        KindSet::parse("CREDIT_CARD,").unwrap().to_string(),
        "credit_card"
    );
    assert!(KindSet::parse("email,passport").is_err());
    assert!(KindSet::parse(" , ").is_err());

    assert_eq!(
        serde_json::to_string(&KindSet::all()).unwrap(),
        r#"["email","credit_card","ssn","phone","api_key"]"#
    );
    let back: KindSet = serde_json::from_str(r#"["api_key","phone"]"#).unwrap();
    assert_eq!(back.to_string(), "phone,api_key");
    assert!(serde_json::from_str::<KindSet>(r#"["nope"]"#).is_err());
}

#[test]
fn actions_and_policies_parse() {
    assert_eq!(parse_action("redact").unwrap(), PiiAction::Redact);
    assert_eq!(parse_action(" BLOCK ").unwrap(), PiiAction::Block);
    assert_eq!(parse_action("off").unwrap(), PiiAction::Off);
    assert!(parse_action("drop").is_err());

    let p: PiiPolicy =
        serde_json::from_str(r#"{"action":"redact","kinds":["email","credit_card"]}"#).unwrap();
    assert_eq!(p.action, PiiAction::Redact);
    assert_eq!(p.kinds.to_string(), "email,credit_card");
    let p: PiiPolicy = serde_json::from_str(r#"{"action":"block"}"#).unwrap();
    assert_eq!(p.kinds, KindSet::all());
    assert!(p.is_active());
    assert!(serde_json::from_str::<PiiPolicy>(r#"{"action":"redact","extra":1}"#).is_err());
    assert!(!PiiPolicy::default().is_active());
    assert!(!PiiPolicy::new(PiiAction::Block, KindSet::empty()).is_active());
    assert_eq!(
        serde_json::to_string(&PiiPolicy::new(PiiAction::Block, KindSet::empty())).unwrap(),
        r#"{"action":"block","kinds":[]}"#
    );
}

// === pattern bounds ===

#[test]
fn patterns_respect_the_length_bounds_the_streamer_relies_on() {
    for (kind, src) in patterns::SOURCES {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(src)
            .unwrap();
        let props = hir.properties();
        let max = props.maximum_len().expect("bounded pattern");
        let min = props.minimum_len().unwrap();
        assert!(max <= MAX_MATCH_LEN, "{kind}: {max}");
        assert!(min >= kind.min_len(), "{kind}: {min} < {}", kind.min_len());
    }
}

// === detectors ===

#[test]
fn emails_are_found_in_text_and_json() {
    let e = |t: &str| only(PiiKind::Email, t);
    assert_eq!(
        e("mail a.b+tag@mail.example.co.uk now"),
        ["a.b+tag@mail.example.co.uk"]
    );
    assert_eq!(e(r#"{"to":"jane@example.com"}"#), ["jane@example.com"]);
    assert_eq!(e("<JANE_1@Example.ORG>."), ["JANE_1@Example.ORG"]);
    for miss in [
        "user@localhost",
        "pkg@1.2.3",
        "logo@2x.png",
        "@handle",
        "a@b.c",
        "x@.com",
    ] {
        assert!(e(miss).is_empty(), "{miss}");
    }
}

#[test]
fn credit_cards_must_pass_luhn_and_stand_alone() {
    let c = |t: &str| only(PiiKind::CreditCard, t);
    assert_eq!(c("card 4111111111111111."), ["4111111111111111"]);
    assert_eq!(c("card 4111 1111 1111 1111 exp"), ["4111 1111 1111 1111"]);
    assert_eq!(c("card 4111-1111-1111-1111"), ["4111-1111-1111-1111"]);
    assert_eq!(c("amex 3782 822463 10005"), ["3782 822463 10005"]);
    assert_eq!(
        c("mc 5500 0000 0000 0004, disc 6011111111111117"),
        ["5500 0000 0000 0004", "6011111111111117"]
    );
    assert_eq!(c("visa13 4222222222222"), ["4222222222222"]);
    // A trailing group that breaks Luhn is dropped.
    assert_eq!(c("4111 1111 1111 1111 123"), ["4111 1111 1111 1111"]);
    for miss in [
        "4111111111111112",              // Luhn
        "4111 1111 1111 1112",           // Luhn
        "ts 1732406400009",              // Luhn-valid, but a timestamp (starts with 1)
        "941111111111111114",            // Luhn-valid, starts with 9
        "run 94111111111111111119",      // inside a longer digit run
        "order_4111111111111111",        // glued to a word
        "x 0.4111111111111111",          // a decimal
        "4111111111111111.5",            // a decimal
        "4111 1111-1111 1111",           // mixed separators
        "4111-1111-1111-1111-12",        // continued
        "4111  1111  1111  1111",        // double spaces
        "12345678901234567890123456789", // long run
    ] {
        assert!(c(miss).is_empty(), "{miss}");
    }
}

#[test]
fn ssns_exclude_never_issued_numbers() {
    let s = |t: &str| only(PiiKind::Ssn, t);
    assert_eq!(s("ssn: 123-45-6789."), ["123-45-6789"]);
    assert_eq!(s("078-05-1120"), ["078-05-1120"]);
    for miss in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
        "123456789",
        "123 45 6789",
        "2026-11-24",
        "1-123-45-6789",
        "123-45-6789-1",
        "a123-45-6789",
    ] {
        assert!(s(miss).is_empty(), "{miss}");
    }
}

#[test]
fn phones_in_common_formats_but_not_dates_versions_or_runs() {
    let p = |t: &str| only(PiiKind::Phone, t);
    for hit in [
        "(415) 555-0100",
        "(415)555-0100",
        "415-555-0100",
        "415.555.0100",
        "415 555 0100",
        "+1 415 555 0100",
        "+1-415-555-0100",
        "+1 (415) 555-0100",
        "1-415-555-0100",
        "+14155550100",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
    ] {
        assert_eq!(p(&format!("call {hit}, thanks")), [hit], "{hit}");
    }
    for miss in [
        "4155550100",
        "2026-11-24",
        "2026-11-24T10:00:00+01:00",
        "version 1.2.3",
        "1.415.555.0100",
        "415.555.0100.2",
        "415-555-0100-22",
        "415-555.0100",
        "123-555-0100",
        "415-123-0100",
        "12345678901234",
        "x415-555-0100",
        "555-0100",
        "+1234567",
        "+0123456789",
    ] {
        assert!(p(miss).is_empty(), "{miss}");
    }
}

#[test]
fn api_key_shapes() {
    let k = |t: &str| only(PiiKind::ApiKey, t);
    let body62 = "aB3dE5fG7hI9jK1lM2nO4pQ6rS8tU0vW1xY2zA3bC4dE5fG6";
    let hits = [
        format!("sk-{body62}"),
        format!("sk-proj-{body62}-_x"),
        format!("sk-ant-api03-{body62}"),
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789".to_owned(),
        "gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".to_owned(),
        format!("github_pat_11ABCDEFG0123456789_{body62}"),
        "AKIAIOSFODNN7EXAMPLE".to_owned(),
        "ASIAIOSFODNN7EXAMPLE".to_owned(),
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp".to_owned(),
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc".to_owned(),
        "rk_live_4eC39HqLyjWDarjtT1zdp7dc".to_owned(),
        "AIzaSyA1234567890abcdefghijklmnopqrstuv".to_owned(),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
            .to_owned(),
    ];
    for hit in &hits {
        assert_eq!(k(&format!("Bearer {hit}\n")), [hit.as_str()], "{hit}");
        assert_eq!(k(&format!(r#"{{"key":"{hit}"}}"#)), [hit.as_str()], "{hit}");
    }
    for miss in [
        format!("task-{body62}"),
        "sk-learn-contrib-imbalanced-learn-project-docs".to_owned(),
        "sk-abcdefghijklmnopqrstuvwxyzabcdefghij".to_owned(),
        "AKIAIOSFODNN7EXAMPLEX".to_owned(),
        "xAKIAIOSFODNN7EXAMPLE".to_owned(),
        "AIzaSyA1234567890abcdefghijklmnopqrstuvw".to_owned(),
        "ghp_short".to_owned(),
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc".to_owned(),
        "eyJhbGciOiJIUzI1NiJ9".to_owned(),
    ] {
        assert!(k(&miss).is_empty(), "{miss}");
    }
}

#[test]
fn matches_are_sorted_non_overlapping_and_leftmost_longest() {
    let found = hits(SAMPLE, KindSet::all());
    let kinds: Vec<PiiKind> = found.iter().map(|(k, _)| *k).collect();
    use PiiKind::*;
    assert_eq!(kinds, [Email, CreditCard, Ssn, Phone, Phone, ApiKey]);
    // `+1 415 555 0100` is one phone, not a phone inside a phone.
    assert_eq!(
        hits("+1 415 555 0100", KindSet::all()),
        [(Phone, "+1 415 555 0100")]
    );
    let ranges: Vec<_> = find(SAMPLE.as_bytes(), KindSet::all())
        .into_iter()
        .map(|m| m.range)
        .collect();
    assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
    // Disabled kinds are not reported.
    assert_eq!(only(Ssn, SAMPLE), ["123-45-6789"]);
}

#[test]
fn redaction_keeps_surrounding_text() {
    assert_eq!(redact_all(SAMPLE), SAMPLE_REDACTED);
    assert_eq!(redact_all("nothing here"), "nothing here");
    assert_eq!(redact_all("jane@example.com"), "[REDACTED]");
}

// === streaming ===

#[tokio::test]
async fn a_match_split_across_two_chunks_is_redacted() {
    let (out, findings) = stream_redact(&[b"mail jane@exa", b"mple.com now"]).await;
    assert_eq!(out, "mail [REDACTED] now");
    assert_eq!(findings.count(PiiKind::Email), 1);
}

#[tokio::test]
async fn a_match_split_across_three_tiny_chunks_is_redacted() {
    let (out, findings) = stream_redact(&[b"ssn 123-4", b"5-67", b"89!"]).await;
    assert_eq!(out, "ssn [REDACTED]!");
    assert_eq!(findings.count(PiiKind::Ssn), 1);
}

#[tokio::test]
async fn one_byte_chunks_give_the_whole_body_result() {
    let chunks: Vec<&[u8]> = SAMPLE.as_bytes().chunks(1).collect();
    let (out, findings) = stream_redact(&chunks).await;
    assert_eq!(out, SAMPLE_REDACTED);
    assert_eq!(findings.total(), 6);
}

#[tokio::test]
async fn every_chunking_gives_the_whole_body_result() {
    // Long enough that the held-back tail is scanned and emitted mid-stream.
    let text = format!("{}{SAMPLE}{}{SAMPLE}", "x ".repeat(3000), "y ".repeat(2500));
    let expected = redact_all(&text);
    for size in [
        2,
        7,
        64,
        1000,
        1023,
        1024,
        1025,
        4096,
        5000,
        5121,
        6007,
        text.len(),
    ] {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        let (out, findings) = stream_redact(&chunks).await;
        assert_eq!(out, expected, "chunk size {size}");
        assert_eq!(findings.total(), 12, "chunk size {size}");
    }
}

#[tokio::test]
async fn empty_bodies_and_trailers_pass_through() {
    let (out, _) = stream_redact(&[]).await;
    assert_eq!(out, "");
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-t", HeaderValue::from_static("1"));
    let frames: Vec<Result<_, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"ssn 123-45-6789"))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = redact_body(
        StreamBody::new(stream::iter(frames)),
        KindSet::all(),
        Arc::default(),
    );
    let collected = body.collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-t"], "1");
    assert_eq!(collected.to_bytes(), "ssn [REDACTED]");
}

#[tokio::test]
async fn a_50_mb_streamed_body_stays_bounded() {
    // 1000-byte units, each with an email and an SSN, in 64 KiB chunks that split
    // units (and matches) at shifting offsets. Chunks are generated lazily.
    let unit = format!("{:<968}", "user jane@example.com ssn 123-45-6789 ");
    let unit = format!("{unit}{}", ".".repeat(1000 - unit.len()));
    assert_eq!(unit.len(), 1000);
    const CHUNK: usize = 64 * 1024;
    const UNITS: usize = 50_000;
    let total = UNITS * unit.len();
    let window = unit.repeat(CHUNK / unit.len() + 2);
    let window = Bytes::from(window);
    let frames = (0..total.div_ceil(CHUNK)).map(move |i| {
        let start = i * CHUNK;
        let len = CHUNK.min(total - start);
        let off = start % 1000;
        Ok::<_, Infallible>(Frame::data(window.slice(off..off + len)))
    });
    let findings = Arc::new(Findings::default());
    let mut body = redact_body(
        StreamBody::new(stream::iter(frames)),
        KindSet::all(),
        findings.clone(),
    );
    let (mut out_len, mut peak) = (0, 0);
    while let Some(frame) = body.frame().await {
        out_len += frame.unwrap().into_data().unwrap().len();
        peak = peak.max(body.transform().carry_len());
    }
    assert!(peak <= MAX_CARRY, "peak carry {peak}");
    assert_eq!(findings.count(PiiKind::Email), UNITS as u64);
    assert_eq!(findings.count(PiiKind::Ssn), UNITS as u64);
    let shrink = "jane@example.com".len() + "123-45-6789".len() - 2 * REDACTED.len();
    assert_eq!(out_len, total - UNITS * shrink);
}

// === JSON and forms ===

#[test]
fn json_strings_keys_and_card_numbers_are_redacted_in_place() {
    let doc = r#"{"user": {"email": "jane@example.com", "notes": ["call 415-555-0100 today", {"jane@example.com": true}]},
 "card": 4111111111111111, "id": 4111111111111112, "neg": -4111111111111111,
 "big": 123456789012345678901234567890, "f": 1.50e3, "esc": "a\u0040example.com \"q\""}"#;
    let findings = Findings::default();
    let out = json::redact(doc.as_bytes(), KindSet::all(), &findings)
        .unwrap()
        .unwrap();
    let expected = r#"{"user": {"email": "[REDACTED]", "notes": ["call [REDACTED] today", {"[REDACTED]": true}]},
 "card": "[REDACTED]", "id": 4111111111111112, "neg": -4111111111111111,
 "big": 123456789012345678901234567890, "f": 1.50e3, "esc": "[REDACTED] \"q\""}"#;
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    serde_json::from_str::<serde_json::Value>(expected).unwrap();
    assert_eq!(findings.count(PiiKind::Email), 3);
    assert_eq!(findings.count(PiiKind::Phone), 1);
    assert_eq!(findings.count(PiiKind::CreditCard), 1);

    let clean = r#"{"a": [1, 2.5, "text", null, true], "b": {"c": "2026-11-24"}}"#;
    assert!(
        json::redact(clean.as_bytes(), KindSet::all(), &Findings::default())
            .unwrap()
            .is_none()
    );
    assert!(json::redact(b"{\"a\": ", KindSet::all(), &Findings::default()).is_err());
}

#[test]
fn form_values_are_decoded_before_scanning() {
    let findings = Findings::default();
    let body = b"to=jane%40example.com&phone=%2B1+415+555+0100&n=1&flag&e=";
    let out = form::redact(body, KindSet::all(), &findings).unwrap();
    assert_eq!(out, b"to=%5BREDACTED%5D&phone=%5BREDACTED%5D&n=1&flag&e=");
    assert_eq!(findings.total(), 2);
    assert!(form::redact(b"a=1&b=2%zz", KindSet::all(), &Findings::default()).is_none());
}

// === inspect ===

#[tokio::test]
async fn off_and_binary_content_types_pass_unchanged() {
    let body = "jane@example.com";
    let off = PiiPolicy::default();
    let (out, len, findings) = run_inspect(body, Some(JSON), off, 1024).await.unwrap();
    assert_eq!((out.as_str(), len, findings.total()), (body, Some(16), 0));
    for ct in [
        "image/png",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
    ] {
        let (out, len, _) = run_inspect(body, Some(ct), block_policy(), 1)
            .await
            .unwrap();
        assert_eq!((out.as_str(), len), (body, Some(16)), "{ct}");
    }
}

#[tokio::test]
async fn redacting_json_gives_the_exact_new_length() {
    let body = r#"{"email":"jane@example.com","n":1}"#;
    for ct in [
        JSON,
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let (out, len, findings) = run_inspect(body, Some(ct), redact_policy(), 1024)
            .await
            .unwrap();
        assert_eq!(out, r#"{"email":"[REDACTED]","n":1}"#);
        assert_eq!(len, Some(out.len() as u64));
        assert_eq!(findings.count(PiiKind::Email), 1);
    }
    // Clean JSON keeps its exact bytes.
    let clean = r#"{ "a" : 1.0e0 }"#;
    let (out, len, _) = run_inspect(clean, Some(JSON), redact_policy(), 1024)
        .await
        .unwrap();
    assert_eq!((out.as_str(), len), (clean, Some(clean.len() as u64)));
}

#[tokio::test]
async fn invalid_json_falls_back_to_text_redaction() {
    let body = "{not json: jane@example.com";
    let (out, len, findings) = run_inspect(body, Some(JSON), redact_policy(), 1024)
        .await
        .unwrap();
    assert_eq!(out, "{not json: [REDACTED]");
    assert_eq!(len, Some(out.len() as u64));
    assert_eq!(findings.total(), 1);
}

#[tokio::test]
async fn json_over_the_bound_is_streamed() {
    let filler = "x".repeat(200);
    let chunks: Vec<String> = vec![
        format!(r#"{{"pad":"{filler}","#),
        r#""email":"jane@exam"#.into(),
        r#"ple.com"}"#.into(),
    ];
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
    let ct = HeaderValue::from_static(JSON);
    let inspected = inspect(
        chunked_body(&refs),
        Some(&ct),
        None,
        &redact_policy(),
        100,
        &test_budget(),
    )
    .await
    .unwrap();
    assert_eq!(inspected.content_length, None);
    let out = String::from_utf8(collect(inspected.body).await).unwrap();
    assert_eq!(out, format!(r#"{{"pad":"{filler}","email":"[REDACTED]"}}"#));
    assert_eq!(inspected.findings.count(PiiKind::Email), 1);

    // Declared too large: streamed without buffering.
    let ct = HeaderValue::from_static(JSON);
    let inspected = inspect(
        chunked_body(&refs),
        Some(&ct),
        Some(10_000),
        &redact_policy(),
        100,
        &test_budget(),
    )
    .await
    .unwrap();
    assert_eq!(inspected.content_length, None);
}

#[tokio::test]
async fn text_is_streamed_chunked_unless_too_short_to_match() {
    let (out, len, findings) = run_inspect(SAMPLE, Some("text/plain"), redact_policy(), 1 << 20)
        .await
        .unwrap();
    assert_eq!((out.as_str(), len), (SAMPLE_REDACTED, None));
    assert_eq!(findings.total(), 6);
    assert_eq!(findings.kinds(), KindSet::all());
    let (out, len, _) = run_inspect("hi", None, redact_policy(), 1024)
        .await
        .unwrap();
    assert_eq!((out.as_str(), len), ("hi", Some(2)));
}

#[tokio::test]
async fn form_bodies_are_redacted_with_exact_length() {
    let body = "email=jane%40example.com&x=1";
    let ct = "application/x-www-form-urlencoded";
    let (out, len, _) = run_inspect(body, Some(ct), redact_policy(), 1024)
        .await
        .unwrap();
    assert_eq!(out, "email=%5BREDACTED%5D&x=1");
    assert_eq!(len, Some(out.len() as u64));
}

#[tokio::test]
async fn block_reports_kinds_without_the_matched_text() {
    let body = r#"{"email":"jane@example.com","ssn":"123-45-6789"}"#;
    let err = run_inspect(body, Some(JSON), block_policy(), 1024)
        .await
        .unwrap_err();
    let PiiError::Blocked(kinds) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(kinds.to_string(), "email,ssn");
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains("jane") && !msg.contains("6789"), "{msg}");
    assert_eq!(err.to_string(), "request body contains PII (email,ssn)");

    // Only the configured kinds block.
    let emails_only = PiiPolicy::new(PiiAction::Block, KindSet::empty().with(PiiKind::Ssn));
    let body = "jane@example.com";
    let (out, len, _) = run_inspect(body, Some("text/plain"), emails_only, 1024)
        .await
        .unwrap();
    assert_eq!((out.as_str(), len), (body, Some(16)));
}

#[tokio::test]
async fn block_passes_clean_bodies_byte_for_byte() {
    let ct = HeaderValue::from_static("text/plain");
    let body = chunked_body(&[b"hello ", b"world, version 1.2.3"]);
    let inspected = inspect(body, Some(&ct), None, &block_policy(), 1024, &test_budget())
        .await
        .unwrap();
    assert_eq!(inspected.content_length, Some(26));
    assert_eq!(collect(inspected.body).await, b"hello world, version 1.2.3");
}

#[tokio::test]
async fn block_refuses_bodies_over_the_bound() {
    let err = run_inspect("0123456789abcdef", None, block_policy(), 8)
        .await
        .unwrap_err();
    assert!(matches!(err, PiiError::TooLarge));
    let body = chunked_body(&[b"0123", b"4567", b"89"]);
    let err = inspect(body, None, None, &block_policy(), 8, &test_budget())
        .await
        .unwrap_err();
    assert!(matches!(err, PiiError::TooLarge));
}

#[tokio::test]
async fn read_errors_while_buffering_are_reported() {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(b"{"))),
        Err(std::io::Error::other("reset")),
    ];
    let body = tokenizer_http::body::boxed(StreamBody::new(stream::iter(frames)));
    let err = inspect(body, None, None, &block_policy(), 1024, &test_budget())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PiiError::Body(tokenizer_http::body::ReadError::Read)
    ));
}

#[test]
fn inspect_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let policy = redact_policy();
    let budget = test_budget();
    let fut = inspect(
        tokenizer_http::body::empty(),
        None,
        None,
        &policy,
        1,
        &budget,
    );
    assert_send(&fut);
}

#[test]
fn adversarial_inputs_scan_in_linear_time() {
    // About 1 MB each of near-misses that make patterns reject and resume; a quadratic
    // scan would not finish. (Release builds scan these at 35–300 MB/s.)
    let mb = 1 << 20;
    let cases: Vec<(Vec<u8>, usize)> = vec![
        ("4111 ".repeat(mb / 5).into_bytes(), 0),
        ("1111-".repeat(mb / 5).into_bytes(), 0),
        ("7".repeat(mb).into_bytes(), 0),
        (format!("{}@b.png", "a".repeat(mb)).into_bytes(), 0),
        ("a@b.png ".repeat(mb / 8).into_bytes(), 0),
        ("415-555-0100-".repeat(mb / 13).into_bytes(), 0),
        ("000-00-0000 ".repeat(mb / 12).into_bytes(), 0),
        (format!("sk-{}", "a".repeat(mb)).into_bytes(), 0),
        ("+1".repeat(mb / 2).into_bytes(), 0),
        ("@".repeat(mb).into_bytes(), 0),
        (format!("a@{}", "b.".repeat(mb / 2)).into_bytes(), 0),
        ("4111111111111111 ".repeat(mb / 17).into_bytes(), mb / 17),
    ];
    for (hay, expected) in cases {
        assert_eq!(find(&hay, KindSet::all()).len(), expected);
    }
}

fn test_budget() -> tokenizer_http::body::Budget {
    tokenizer_http::body::Budget::new(1 << 30)
}
