//! `inject_body_processor`: replace a placeholder in the request body with the token,
//! streaming (the body is then sent chunked).

use serde::{Deserialize, Serialize};

use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretString};

pub const PARAM_PLACEHOLDER: &str = "placeholder";
pub const DEFAULT_PLACEHOLDER: &str = "{{ACCESS_TOKEN}}";

/// The sealed `inject_body_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectBodyConfig {
    /// The credential written in place of the placeholder; required.
    #[serde(default)]
    pub token: SecretString,
    /// The text replaced, unless the `placeholder` param names another; empty means
    /// `{{ACCESS_TOKEN}}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub placeholder: String,
}

impl InjectBodyConfig {
    /// Push the streaming `Replace` step for the chosen placeholder.
    pub fn build(&self, params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        if self.token.is_empty() {
            return Err(ProcessorError::MissingToken);
        }
        out.extend(Step::replace(
            choose_placeholder(params, &self.placeholder),
            &self.token,
        ));
        Ok(())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            token: SecretString::redacted(),
            placeholder: self.placeholder.clone(),
        }
    }
}

/// Param `placeholder` if present, else the configured one, else `{{ACCESS_TOKEN}}` when
/// that is empty.
pub fn choose_placeholder<'a>(params: &'a Params, configured: &'a str) -> &'a str {
    let chosen = params
        .get(PARAM_PLACEHOLDER)
        .map_or(configured, String::as_str);
    if chosen.is_empty() {
        DEFAULT_PLACEHOLDER
    } else {
        chosen
    }
}
