//! Method overrides: what web frameworks read as the request's method instead of the
//! one on the request line. Rails (Rack::MethodOverride), Laravel and Symfony act on a
//! `_method` field of a POST body as the method (`_method=DELETE` turns an allowed POST
//! into a DELETE); express's method-override and others read `X-HTTP-Method-Override`
//! and friends. Under a method rule each spelling is refused: headers and query
//! parameters always, body fields in a POST whose body a framework would parse — a form
//! (`application/x-www-form-urlencoded`, `multipart/form-data`, or no `Content-Type`,
//! which Rack parses as a form) or JSON (Laravel reads its top-level keys).
//!
//! Field names are compared as the most lenient framework reads them: case-insensitive,
//! percent-decoded, with PHP's rewriting of `.` and ` ` to `_`, and with any `[…]` suffix
//! (`_method[]`) cut off; `&` and `;` both separate form fields (older Rack splits on
//! both). A body that cannot be read as its type declares is refused too: a server that
//! reads it differently could find a field the check did not.

use bytes::Bytes;
use http::{HeaderMap, header};

/// Method-override headers and parameter names that web frameworks honour.
pub const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "_method",
];

/// How a POST body would be parsed for fields.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldBody {
    /// `application/x-www-form-urlencoded`, or no `Content-Type`.
    Form,
    /// `multipart/form-data` with this boundary.
    Multipart(String),
    /// `application/json` or `…+json`.
    Json,
}

/// Why a body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum OverrideError {
    /// A method-override field.
    Found,
    /// A form or JSON body that could not be read as such, or that is ambiguous (two
    /// `Content-Type`s, a content coding).
    Unreadable,
}

/// Is `name` (a header, parameter or field name, already percent-decoded) a method
/// override?
pub fn is_override_name(name: &str) -> bool {
    let name = name.trim_start();
    let name = name.split('[').next().unwrap_or(name);
    let normal: String = name
        .chars()
        .map(|c| match c {
            '.' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    METHOD_OVERRIDES
        .iter()
        .any(|m| normal == *m || normal == m.replace('-', "_"))
}

/// Does a request head carry a method override: a header, or a query parameter?
pub fn in_head(headers: &HeaderMap, query: Option<&str>) -> bool {
    METHOD_OVERRIDES.iter().any(|h| headers.contains_key(*h))
        || query.is_some_and(|q| {
            q.split(['&', ';']).any(|pair| {
                form_urlencoded::parse(pair.as_bytes()).any(|(k, _)| is_override_name(&k))
            })
        })
}

/// How a POST with these headers would be parsed for fields, if at all (`None`: a body
/// no framework reads fields from, such as `application/octet-stream`).
pub fn field_body(headers: &HeaderMap) -> Result<Option<FieldBody>, OverrideError> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (first, second) = (types.next(), types.next());
    if second.is_some() {
        return Err(OverrideError::Unreadable);
    }
    let kind = match first {
        None => FieldBody::Form,
        Some(value) => {
            let text = value.to_str().map_err(|_| OverrideError::Unreadable)?;
            let essence = text
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match essence.as_str() {
                "application/x-www-form-urlencoded" | "" => FieldBody::Form,
                "multipart/form-data" => FieldBody::Multipart(
                    multer::parse_boundary(text).map_err(|_| OverrideError::Unreadable)?,
                ),
                "application/json" => FieldBody::Json,
                e if e.ends_with("+json") => FieldBody::Json,
                _ => return Ok(None),
            }
        }
    };
    if tokenizer_http::headers::has_content_coding(headers) {
        return Err(OverrideError::Unreadable);
    }
    Ok(Some(kind))
}

/// Look for a method-override field in a buffered body of `kind`.
pub async fn check_body(kind: &FieldBody, body: &Bytes) -> Result<(), OverrideError> {
    let found = match kind {
        FieldBody::Form => form_has_override(body),
        FieldBody::Json => json_has_override(body)?,
        FieldBody::Multipart(boundary) => multipart_has_override(body, boundary).await?,
    };
    if found {
        return Err(OverrideError::Found);
    }
    Ok(())
}

fn form_has_override(body: &[u8]) -> bool {
    body.split(|b| *b == b'&' || *b == b';').any(|pair| {
        form_urlencoded::parse(pair)
            .next()
            .is_some_and(|(name, _)| is_override_name(&name))
    })
}

/// Top-level keys of a JSON object (escapes decoded by the parser).
fn json_has_override(body: &[u8]) -> Result<bool, OverrideError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| OverrideError::Unreadable)?;
    Ok(value
        .as_object()
        .is_some_and(|map| map.keys().any(|k| is_override_name(k))))
}

/// Every part's name, by a multipart parser (multer); a part whose `Content-Disposition`
/// uses the extended `name*=` form, which parsers disagree about, counts as one.
async fn multipart_has_override(body: &Bytes, boundary: &str) -> Result<bool, OverrideError> {
    let stream = futures_util::stream::once({
        let body = body.clone();
        async move { Ok::<Bytes, std::convert::Infallible>(body) }
    });
    let mut parts = multer::Multipart::new(stream, boundary);
    loop {
        let field = match parts.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(false),
            Err(_) => return Err(OverrideError::Unreadable),
        };
        let extended = field
            .headers()
            .get_all(header::CONTENT_DISPOSITION)
            .iter()
            .any(|v| {
                v.as_bytes()
                    .windows(5)
                    .any(|w| w.eq_ignore_ascii_case(b"name*"))
            });
        if extended || field.name().is_some_and(is_override_name) {
            return Ok(true);
        }
        // Skipped unread: the next call reads past this part's body.
        drop(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn override_names_as_lenient_frameworks_read_them() {
        for name in [
            "_method",
            "_METHOD",
            "_method[]",
            "_method[x]",
            " _method",
            ".method",
            "X-HTTP-Method-Override",
            "x_http_method_override",
        ] {
            assert!(is_override_name(name), "{name}");
        }
        for name in ["method", "_methods", "my_method", "", "[_method]"] {
            assert!(!is_override_name(name), "{name}");
        }
    }

    #[test]
    fn bodies_are_typed_by_their_content_type() {
        assert_eq!(field_body(&headers(&[])), Ok(Some(FieldBody::Form)));
        assert_eq!(
            field_body(&headers(&[(
                "content-type",
                "Application/X-WWW-Form-Urlencoded; charset=utf-8"
            )])),
            Ok(Some(FieldBody::Form))
        );
        assert_eq!(
            field_body(&headers(&[(
                "content-type",
                "multipart/form-data; boundary=XyZ"
            )])),
            Ok(Some(FieldBody::Multipart("XyZ".to_owned())))
        );
        assert_eq!(
            field_body(&headers(&[("content-type", "application/vnd.api+json")])),
            Ok(Some(FieldBody::Json))
        );
        assert_eq!(
            field_body(&headers(&[("content-type", "application/octet-stream")])),
            Ok(None)
        );
        for bad in [
            vec![
                ("content-type", "application/json"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            vec![("content-type", "multipart/form-data")],
            vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-encoding", "gzip"),
            ],
        ] {
            assert_eq!(
                field_body(&headers(&bad)),
                Err(OverrideError::Unreadable),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn override_fields_are_found_in_every_body_kind() {
        let form = FieldBody::Form;
        for body in [
            "_method=DELETE",
            "a=1&_method=DELETE",
            "a=1;_method=DELETE",
            "%5Fmethod=DELETE",
            "_Method=delete",
            "_method%5B%5D=DELETE",
        ] {
            let got = check_body(&form, &Bytes::from(body)).await;
            assert_eq!(got, Err(OverrideError::Found), "{body}");
        }
        assert!(
            check_body(&form, &Bytes::from("a=1&method=x"))
                .await
                .is_ok()
        );
        let json = FieldBody::Json;
        for body in [
            r#"{"_method":"DELETE"}"#,
            r#"{"\u005fmethod":"DELETE"}"#,
            r#"{"a":1,"_method":"DELETE","a":2}"#,
        ] {
            let got = check_body(&json, &Bytes::from(body)).await;
            assert_eq!(got, Err(OverrideError::Found), "{body}");
        }
        assert!(
            check_body(&json, &Bytes::from(r#"{"a":{"_method":"x"}}"#))
                .await
                .is_ok()
        );
        assert!(check_body(&json, &Bytes::from("")).await.is_ok());
        assert_eq!(
            check_body(&json, &Bytes::from("{not json")).await,
            Err(OverrideError::Unreadable)
        );
        let multi = FieldBody::Multipart("b0und".to_owned());
        let part = |disposition: &str| {
            Bytes::from(format!(
                "--b0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
                 --b0und\r\nContent-Disposition: {disposition}\r\n\r\nDELETE\r\n--b0und--\r\n"
            ))
        };
        for disposition in [
            "form-data; name=\"_method\"",
            "form-data; name=_method",
            "form-data; name*=utf-8''_method",
        ] {
            let got = check_body(&multi, &part(disposition)).await;
            assert_eq!(got, Err(OverrideError::Found), "{disposition}");
        }
        assert!(
            check_body(
                &multi,
                &part("form-data; name=\"file\"; filename=\"m.txt\"")
            )
            .await
            .is_ok()
        );
        assert_eq!(
            check_body(&multi, &Bytes::from("--other\r\n\r\nx")).await,
            Err(OverrideError::Unreadable)
        );
    }
}
