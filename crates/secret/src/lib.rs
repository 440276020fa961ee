//! The secret model: what a sealed secret is and what it allows.
//!
//! - [`secret`]: the secret's JSON (Go's decoding rules), the one validator for seals,
//!   lints, the `Proxy-Tokenizer` header, the unseal cache;
//! - [`auth`]: who may use a secret (bearer digests, Fly-Src, macaroons, OIDC tokens,
//!   client certificates);
//! - [`policy`]: where, when and how often (hosts, methods, paths, validity, limits,
//!   revocation lists);
//! - [`exchange`]: sealing the tokens a token exchange returns;
//! - [`presets`]: the built-in APIs of `seal --for`.
//!
//! With [`tokenizer_core`], this is what a Rust program uses to seal secrets.

pub mod auth;
pub mod exchange;
pub mod policy;
pub mod presets;
pub mod secret;
