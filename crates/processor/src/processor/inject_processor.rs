//! `inject_processor`: write the token into a header (`fmt`/`dst` rules apply).

use serde::{Deserialize, Serialize};

use super::fmt_dst::{FmtArg, FmtDst};
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretString};

/// The sealed `inject_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectConfig {
    /// The credential written into the header; required.
    #[serde(default)]
    pub token: SecretString,
    /// Which header, and how the token is written in it.
    #[serde(flatten)]
    pub fmt_dst: FmtDst,
}

impl InjectConfig {
    /// Push the `SetHeader` step that writes the token, checked against `fmt`/`dst`.
    pub fn build(&self, params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        if self.token.is_empty() {
            return Err(ProcessorError::MissingToken);
        }
        let value = self
            .fmt_dst
            .format(params, false)?
            .render(FmtArg::Str(self.token.expose()))?;
        let name = self.fmt_dst.dst(params)?;
        out.push(Step::SetHeader { name, value });
        Ok(())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            token: SecretString::redacted(),
            fmt_dst: self.fmt_dst.clone(),
        }
    }
}
