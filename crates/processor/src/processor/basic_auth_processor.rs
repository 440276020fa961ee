//! `basic_auth_processor`: the credential as HTTP Basic auth (RFC 7617),
//! `Authorization: Basic base64(user:password)`, with the user name in the seal — git
//! over HTTPS (`x-access-token` for GitHub, `oauth2` for GitLab) and APIs that take a
//! user name and an app password.
//!
//! A processor kind of its own, so that the Go tokenizer refuses such a secret (it
//! knows no such key) instead of misreading it. The request must not already carry an
//! `Authorization` header (which credential would the server use?) unless the seal says
//! `replace`.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{ProcessorError, Step};
use http::{HeaderValue, header};
use tokenizer_core::SecretString;

/// The sealed `basic_auth_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAuthConfig {
    /// The user name (may be empty; may not contain `:`, which ends the user name on
    /// the server's side).
    #[serde(default)]
    pub user: String,
    /// The credential (a token, an app password); required.
    #[serde(default)]
    pub password: SecretString,
    /// Overwrite an `Authorization` header the client sent, instead of refusing the
    /// request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

impl BasicAuthConfig {
    /// What is wrong with the user name or password, if anything (fixed texts: never
    /// the password).
    pub fn problem(&self) -> Option<ProcessorError> {
        if self.password.is_empty() {
            return Some(ProcessorError::MissingToken);
        }
        if self.user.contains(':') {
            return Some(ProcessorError::BadConfig(
                "basic_auth_processor.user cannot contain ':' (the server ends the user name at the first ':')"
                    .to_owned(),
            ));
        }
        // RFC 7617 §2: neither may contain control characters.
        let control = |s: &str| s.chars().any(char::is_control);
        if control(&self.user) {
            return Some(ProcessorError::BadConfig(
                "basic_auth_processor.user contains a control character".to_owned(),
            ));
        }
        if control(self.password.expose()) {
            return Some(ProcessorError::BadConfig(
                "basic_auth_processor.password contains a control character".to_owned(),
            ));
        }
        None
    }

    /// The header value, `Basic base64(user:password)` (UTF-8, RFC 7617's only charset).
    pub fn header_value(&self) -> Result<HeaderValue, ProcessorError> {
        if let Some(problem) = self.problem() {
            return Err(problem);
        }
        let pair = Zeroizing::new(format!("{}:{}", self.user, self.password.expose()));
        let text = Zeroizing::new(format!(
            "Basic {}",
            tokenizer_core::b64::encode(pair.as_bytes())
        ));
        let mut value = HeaderValue::from_str(&text).map_err(|_| ProcessorError::BadValue)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Push the step that writes the header.
    pub fn build(&self, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        let value = self.header_value()?;
        let name = header::AUTHORIZATION;
        out.push(if self.replace {
            Step::SetHeader { name, value }
        } else {
            Step::SetFreshHeader { name, value }
        });
        Ok(())
    }

    /// A copy with the password replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            password: SecretString::redacted(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(user: &str, password: &str) -> BasicAuthConfig {
        BasicAuthConfig {
            user: user.to_owned(),
            password: SecretString::new(password),
            replace: false,
        }
    }

    fn decoded(c: &BasicAuthConfig) -> String {
        let value = c.header_value().unwrap();
        let text = value.to_str().unwrap();
        let b64 = text.strip_prefix("Basic ").unwrap();
        String::from_utf8(tokenizer_core::b64::decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn writes_user_colon_password_in_standard_base64() {
        let c = config("x-access-token", "ghs_abc");
        assert_eq!(
            c.header_value().unwrap(),
            "Basic eC1hY2Nlc3MtdG9rZW46Z2hzX2FiYw=="
        );
        assert!(c.header_value().unwrap().is_sensitive());
        assert_eq!(decoded(&config("oauth2", "glpat-x")), "oauth2:glpat-x");
    }

    #[test]
    fn a_colon_may_be_in_the_password_but_not_in_the_user() {
        assert_eq!(decoded(&config("u", "a:b:c")), "u:a:b:c");
        assert!(matches!(
            config("a:b", "pw").header_value(),
            Err(ProcessorError::BadConfig(m)) if m.contains("':'")
        ));
    }

    #[test]
    fn non_ascii_is_sent_as_utf8() {
        let c = config("zoë", "pässwörd€");
        assert_eq!(decoded(&c), "zoë:pässwörd€");
        assert_eq!(
            c.header_value().unwrap(),
            format!(
                "Basic {}",
                tokenizer_core::b64::encode("zoë:pässwörd€".as_bytes())
            )
        );
    }

    #[test]
    fn empty_user_is_allowed_empty_password_is_not() {
        assert_eq!(decoded(&config("", "pat")), ":pat");
        assert_eq!(
            config("u", "").header_value(),
            Err(ProcessorError::MissingToken)
        );
    }

    #[test]
    fn control_characters_are_refused_without_quoting_the_password() {
        for (user, pw) in [("u\n", "pw"), ("u", "p\r\nX-Evil: 1"), ("u", "p\0w")] {
            let err = config(user, pw).header_value().unwrap_err();
            assert!(!err.to_string().contains("p\r\n"), "{err}");
            assert!(matches!(err, ProcessorError::BadConfig(_)));
        }
    }

    #[test]
    fn replace_chooses_the_step() {
        let mut out = Vec::new();
        config("u", "pw").build(&mut out).unwrap();
        assert!(matches!(out[0], Step::SetFreshHeader { .. }));
        let mut c = config("u", "pw");
        c.replace = true;
        c.build(&mut out).unwrap();
        assert!(matches!(out[1], Step::SetHeader { .. }));
    }

    #[test]
    fn stripped_keeps_the_user() {
        let s = config("x-access-token", "secret").stripped();
        assert_eq!(s.user, "x-access-token");
        assert_ne!(s.password.expose(), "secret");
    }
}
