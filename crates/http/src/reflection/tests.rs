use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::masker::mask_ranges;
use super::*;

fn guard(values: &[&str]) -> Arc<Guard> {
    let values: Vec<SecretBytes> = values
        .iter()
        .map(|v| SecretBytes::new(v.as_bytes().to_vec()))
        .collect();
    Arc::new(Guard::new(&values).unwrap().unwrap())
}

fn set(guards: &[Arc<Guard>]) -> GuardSet {
    let mut s = GuardSet::default();
    for g in guards {
        s.push(g.clone());
    }
    s
}

/// Stream `chunks` through the masker; the output and the match count.
fn stream_through(guards: &GuardSet, chunks: &[&[u8]]) -> (Vec<u8>, usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let mut m = Masker::new(guards.clone(), count.clone());
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&m.push(Bytes::copy_from_slice(c)));
    }
    out.extend_from_slice(&m.finish());
    (out, count.load(Ordering::Relaxed))
}

const TOKEN: &str = "sk-live-0123456789abcdefXYZ";

#[test]
fn masks_keep_the_length() {
    let mut text = b"a 12345678 b 1234567890123 c".to_vec();
    assert_eq!(mask_ranges(&mut text, &[(2, 10), (13, 26)], 0), 0);
    assert_eq!(&text, b"a [REDACTE b [REDACTED]*** c");
    // A run that goes on from the previous text goes on with the same mask.
    let mut text = b"12345678 x".to_vec();
    assert_eq!(mask_ranges(&mut text, &[(0, 4)], 6), 0);
    assert_eq!(&text, b"TED]5678 x");
    let mut text = b"abcdef".to_vec();
    assert_eq!(mask_ranges(&mut text, &[(2, 6)], 0), 4);
}

#[test]
fn a_second_guard_cannot_hide_part_of_a_credential() {
    // A caller-sealed secret whose "credential" is a known prefix of the real one, made
    // longer than the real credential so it would be applied first: every byte of the
    // real credential is masked anyway.
    let real = guard(&[TOKEN]);
    let attacker = guard(&["{\"x-api-key\":\"sk-live-0123456789abc-padding-to-be-longer"]);
    let echo = format!("{{\"x-api-key\":\"{TOKEN}\"}}");
    for order in [[&real, &attacker], [&attacker, &real]] {
        let guards = set(&[order[0].clone(), order[1].clone()]);
        let (n, masked) = guards.mask_text(echo.as_bytes());
        let masked = String::from_utf8(masked.unwrap()).unwrap();
        assert!(n >= 1);
        assert!(!masked.contains("0123456789"), "{masked}");
        assert!(!masked.contains("XYZ"), "{masked}");
        assert_eq!(masked.len(), echo.len());
    }
}

#[test]
fn overlapping_credentials_are_masked_as_their_union() {
    let guards = set(&[guard(&["abcdefghij"]), guard(&["ghijklmnop"])]);
    let (n, masked) = guards.mask_text(b"..abcdefghijklmnop..");
    assert_eq!(n, 2);
    assert_eq!(masked.unwrap(), b"..[REDACTED]******..");
    let (_, masked) = guards.mask_text(b"abcdefghij");
    assert_eq!(masked.unwrap(), b"[REDACTED]");
}

#[test]
fn every_split_of_the_stream_masks_the_same() {
    let guards = set(&[guard(&[TOKEN])]);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, TOKEN);
    let text = format!("start {TOKEN} mid {b64} {TOKEN}{TOKEN} end sk-live-");
    let (whole, n) = stream_through(&guards, &[text.as_bytes()]);
    assert_eq!(n, 4);
    assert_eq!(whole.len(), text.len());
    let whole_text = String::from_utf8(whole.clone()).unwrap();
    assert!(!whole_text.contains("0123456789"), "{whole_text}");
    assert!(whole_text.ends_with(" end sk-live-"), "{whole_text}");
    for size in 1..text.len() {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        let (out, count) = stream_through(&guards, &chunks);
        assert_eq!(
            String::from_utf8_lossy(&out),
            whole_text,
            "chunks of {size}"
        );
        assert_eq!(count, n, "chunks of {size}");
    }
}

#[test]
fn only_a_possible_match_start_is_held_back() {
    let guards = set(&[guard(&[TOKEN])]);
    let mut m = Masker::new(guards, Arc::default());
    // An SSE event ends with a newline, which starts no form of the credential.
    assert_eq!(
        &m.push(Bytes::from_static(b"data: one\n\n"))[..],
        b"data: one\n\n"
    );
    let sent = m.push(Bytes::from_static(b"data: sk-li"));
    assert!(b"data: sk-li".starts_with(&sent));
    assert!(sent.len() < 11);
    assert_eq!(&m.finish()[..], &b"data: sk-li"[sent.len()..]);
}

#[test]
fn long_credentials_are_refused_and_large_ones_are_linear() {
    let long = SecretBytes::new(vec![b'a'; MAX_GUARDED_LEN + 1]);
    assert_eq!(Guard::new(&[long]).unwrap_err(), GuardError::TooLong);
    let two = [
        SecretBytes::new(vec![b'a'; MAX_GUARDED_LEN]),
        SecretBytes::new(vec![b'b'; MAX_GUARDED_LEN]),
        SecretBytes::new(vec![b'c'; 8]),
    ];
    assert_eq!(Guard::new(&two).unwrap_err(), GuardError::TooLong);
    // The largest credential the guard takes builds (an NFA) and streams quickly: the
    // DFA it used to build took seconds, on the request's thread.
    let value: Vec<u8> = (0..MAX_GUARDED_LEN).map(|i| b"ab"[i % 7 / 6]).collect();
    let start = std::time::Instant::now();
    let g = Guard::new(&[SecretBytes::new(value.clone())])
        .unwrap()
        .unwrap();
    let guards = set(&[Arc::new(g)]);
    let mut text = vec![b'a'; 64 * 1024];
    text.extend_from_slice(&value);
    let chunks: Vec<&[u8]> = text.chunks(1000).collect();
    let (out, n) = stream_through(&guards, &chunks);
    assert_eq!(n, 1);
    assert_eq!(out.len(), text.len());
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn the_body_masks_data_and_trailers() {
    let guards = set(&[guard(&[TOKEN])]);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-message", TOKEN.parse().unwrap());
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::from(&TOKEN[..5]))),
        Ok(Frame::data(Bytes::from(&TOKEN[5..]))),
        Ok(Frame::trailers(trailers)),
    ];
    let count = Arc::new(AtomicUsize::new(0));
    let body = guards.body(StreamBody::new(stream::iter(frames)), count.clone());
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert_eq!(trailers["grpc-message"], "[REDACTED]*****************");
    assert_eq!(&collected.to_bytes()[..], b"[REDACTED]*****************");
    assert_eq!(count.load(Ordering::Relaxed), 2);
}
