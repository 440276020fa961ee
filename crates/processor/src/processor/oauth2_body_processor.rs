//! `oauth2_body_processor`: always replace the placeholder in the body with the access
//! (or, with `st=refresh`, the refresh) token.

use serde::{Deserialize, Serialize};

use super::inject_body_processor::choose_placeholder;
use super::oauth2_processor::OAuthToken;
use super::{ProcessorError, Step};
use tokenizer_core::Params;

/// The sealed `oauth2_body_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuth2BodyConfig {
    /// The tokens; without them every request fails with a missing token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<OAuthToken>,
    /// The text replaced, unless the `placeholder` param names another; empty means
    /// `{{ACCESS_TOKEN}}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub placeholder: String,
}

impl OAuth2BodyConfig {
    /// Push the streaming `Replace` step of the placeholder by the selected token.
    pub fn build(&self, params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        let token = OAuthToken::select(self.token.as_ref(), params)?;
        out.extend(Step::replace(
            choose_placeholder(params, &self.placeholder),
            &token,
        ));
        Ok(())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            token: Some(OAuthToken::stripped()),
            placeholder: self.placeholder.clone(),
        }
    }
}
