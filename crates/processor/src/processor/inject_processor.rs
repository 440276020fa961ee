//! `inject_processor`: write the token into a header (`fmt`/`dst` rules apply).

use serde::{Deserialize, Serialize};

use super::fmt_dst::{FmtArg, FmtDst};
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretString};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectConfig {
    #[serde(default)]
    pub token: SecretString,
    #[serde(flatten)]
    pub fmt_dst: FmtDst,
}

impl InjectConfig {
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

    pub fn stripped(&self) -> Self {
        Self {
            token: SecretString::redacted(),
            fmt_dst: self.fmt_dst.clone(),
        }
    }
}
