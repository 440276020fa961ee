#![warn(missing_docs)]
//! The sidecar (`tokenizer sideproxy`): a TLS listener that forges a certificate per SNI so
//! unmodified clients holding dummy keys talk to it as if it were the API, and forwards
//! through the tokenizer with the sealed secret for that host.

pub mod sideproxy;
