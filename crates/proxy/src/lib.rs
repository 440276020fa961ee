#![warn(missing_docs)]
//! The tokenizer proxy (`tokenizer serve`): opens sealed secrets, checks who may use them and
//! where, injects the credential and forwards over TLS.

pub mod proxy;
