//! `query_param_processor`: the credential as one named query parameter, for APIs that
//! take their key in the URL (`?key=` for Google Maps and other Google APIs, `?api_key=`
//! elsewhere). A processor kind of its own, so that the Go tokenizer refuses such a
//! secret instead of sending the key in a header.
//!
//! The parameter is appended as `name=value`, both percent-encoded (everything but RFC
//! 3986's unreserved characters, so no server reads a `+`, `&`, `;` or `=` in the key as
//! anything but the key). A query that already names the parameter would be ambiguous —
//! servers differ on whether the first or the last of repeated parameters wins — so it is
//! refused, unless the seal says `replace`: then every occurrence is removed first. Names
//! are compared as the most lenient server reads them: percent- and form-decoded
//! (`%6Bey`, `k+ey`), case-insensitively. A `;` next to the name (`a=1;key=x`, which some
//! servers split as two parameters and others as one) is refused even with `replace`:
//! removing it would change what the other servers read.

use http::Uri;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{ProcessorError, Step};
use tokenizer_core::SecretString;

/// The longest parameter name accepted.
const MAX_PARAM: usize = 256;

/// The sealed `query_param_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryParamConfig {
    /// The parameter's name, e.g. `key`; required.
    #[serde(default)]
    pub param: String,
    /// The credential; required.
    #[serde(default)]
    pub token: SecretString,
    /// Remove the client's own occurrences of the parameter instead of refusing the
    /// request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

impl QueryParamConfig {
    /// What is wrong with the configuration, if anything (fixed texts).
    pub fn problem(&self) -> Option<ProcessorError> {
        if self.token.is_empty() {
            return Some(ProcessorError::MissingToken);
        }
        if self.param.trim().is_empty() || self.param.len() > MAX_PARAM {
            return Some(ProcessorError::BadConfig(format!(
                "query_param_processor.param: a parameter name of 1 to {MAX_PARAM} characters"
            )));
        }
        if self.param.chars().any(char::is_control) {
            return Some(ProcessorError::BadConfig(
                "query_param_processor.param contains a control character".to_owned(),
            ));
        }
        None
    }

    /// Push the step that sets the parameter.
    pub fn build(&self, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        if let Some(problem) = self.problem() {
            return Err(problem);
        }
        out.push(Step::SetQueryParam {
            name: self.param.clone(),
            value: SecretString::new(tokenizer_core::percent::encode(
                self.token.expose().as_bytes(),
            )),
            replace: self.replace,
        });
        Ok(())
    }

    /// A copy with the token replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            token: SecretString::redacted(),
            ..self.clone()
        }
    }
}

/// Does the query field `field` (`name=value`, still encoded) name `param`?
fn names(field: &str, param: &str) -> bool {
    let name = field.split('=').next().unwrap_or_default();
    form_urlencoded::parse(name.as_bytes())
        .next()
        .is_some_and(|(decoded, _)| decoded.eq_ignore_ascii_case(param))
}

/// Set `name=encoded` in the query of `uri` (see the module docs for what is refused).
/// `encoded` is already percent-encoded.
pub fn set_query_param(
    uri: &mut Uri,
    name: &str,
    encoded: &str,
    replace: bool,
) -> Result<(), ProcessorError> {
    let query = uri.query().unwrap_or_default();
    let mut kept: Vec<&str> = Vec::new();
    for field in query.split('&') {
        if field.contains(';') && field.split(';').any(|f| names(f, name)) {
            return Err(ProcessorError::BadRequest(format!(
                "the query names parameter {name:?} next to a ';', which servers split differently"
            )));
        }
        if names(field, name) {
            if !replace {
                return Err(ProcessorError::BadRequest(format!(
                    "the request already has query parameter {name:?} (a secret with \"replace\": true overwrites it)"
                )));
            }
            continue;
        }
        if !field.is_empty() {
            kept.push(field);
        }
    }
    let ours = Zeroizing::new(format!(
        "{}={encoded}",
        tokenizer_core::percent::encode(name.as_bytes())
    ));
    kept.push(ours.as_str());
    let pq = Zeroizing::new(format!("{}?{}", uri.path(), kept.join("&")));
    let mut parts = http::uri::Parts::from(uri.clone());
    parts.path_and_query = Some(pq.parse().map_err(|_| ProcessorError::BadPath)?);
    *uri = Uri::from_parts(parts).map_err(|_| ProcessorError::BadPath)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(uri: &str, name: &str, token: &str, replace: bool) -> Result<String, ProcessorError> {
        let mut uri: Uri = uri.parse().unwrap();
        let encoded = tokenizer_core::percent::encode(token.as_bytes());
        set_query_param(&mut uri, name, &encoded, replace)?;
        Ok(uri.to_string())
    }

    #[test]
    fn appends_to_no_query_or_an_existing_one() {
        assert_eq!(
            set("/v1/geo", "key", "AIza1", false).unwrap(),
            "/v1/geo?key=AIza1"
        );
        assert_eq!(
            set("http://h/v1/geo?address=a+b&x=", "key", "AIza1", false).unwrap(),
            "http://h/v1/geo?address=a+b&x=&key=AIza1"
        );
        assert_eq!(set("/p?", "key", "k", false).unwrap(), "/p?key=k");
    }

    #[test]
    fn reserved_characters_in_the_key_are_percent_encoded() {
        assert_eq!(
            set("/p", "key", "a+b&c=d;e f/g%h", false).unwrap(),
            "/p?key=a%2Bb%26c%3Dd%3Be%20f%2Fg%25h"
        );
        assert_eq!(
            set("/p", "key", "ключ", false).unwrap(),
            "/p?key=%D0%BA%D0%BB%D1%8E%D1%87"
        );
        assert_eq!(set("/p", "api key", "k", false).unwrap(), "/p?api%20key=k");
        // Unreserved characters stay as they are.
        assert_eq!(
            set("/p", "key", "A-z_0.9~", false).unwrap(),
            "/p?key=A-z_0.9~"
        );
    }

    #[test]
    fn an_existing_parameter_is_refused_in_every_spelling() {
        for uri in [
            "/p?key=dummy",
            "/p?a=1&key",
            "/p?KEY=x",
            "/p?%6Bey=x",
            "/p?k%65y=x",
            "/p?key=1&key=2",
        ] {
            let err = set(uri, "key", "real", false).unwrap_err();
            assert!(err.to_string().contains("already has"), "{uri}: {err}");
        }
        let err = set("/p?a=b", "api key", "real", false);
        assert!(err.is_ok());
        assert!(set("/p?api+key=x", "api key", "real", false).is_err());
        // Other parameters that merely contain the name are not it.
        assert_eq!(
            set("/p?keys=1&monkey=2&key_id=3", "key", "k", false).unwrap(),
            "/p?keys=1&monkey=2&key_id=3&key=k"
        );
    }

    #[test]
    fn replace_removes_every_occurrence() {
        assert_eq!(
            set("/p?key=dummy&a=1&KEY=2&%6Bey=3", "key", "real", true).unwrap(),
            "/p?a=1&key=real"
        );
    }

    #[test]
    fn a_semicolon_beside_the_name_is_refused_even_with_replace() {
        for replace in [false, true] {
            let err = set("/p?a=1;key=x", "key", "real", replace).unwrap_err();
            assert!(err.to_string().contains("';'"), "{err}");
        }
        // A ';' elsewhere is left alone.
        assert_eq!(
            set("/p?a=1;b=2", "key", "k", false).unwrap(),
            "/p?a=1;b=2&key=k"
        );
    }

    #[test]
    fn configuration_problems() {
        let c = |param: &str, token: &str| QueryParamConfig {
            param: param.to_owned(),
            token: SecretString::new(token),
            replace: false,
        };
        assert_eq!(c("key", "").problem(), Some(ProcessorError::MissingToken));
        assert!(c("", "k").problem().is_some());
        assert!(c(" ", "k").problem().is_some());
        assert!(c("a\nb", "k").problem().is_some());
        assert!(c(&"k".repeat(MAX_PARAM + 1), "t").problem().is_some());
        assert_eq!(c("key", "t").problem(), None);
    }
}
