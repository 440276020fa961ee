#![warn(missing_docs)]
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
//! With [`tokenizer_core`], this is what a Rust program uses to seal secrets: check the
//! JSON with the same validator as `tokenizer seal`, seal it to the tokenizer's seal key,
//! and send the result in `Proxy-Tokenizer`.
//!
//! ```
//! use tokenizer_core::keys::{OpenKey, OpenKeys};
//! use tokenizer_secret::secret::{Secret, validate};
//!
//! // The tokenizer's key pair; a client only ever holds the seal key (`SEAL_KEY`).
//! let open = OpenKey::generate();
//! let seal_key = open.seal_key();
//!
//! let json = br#"{
//!     "inject_processor": {"token": "sk-live-0123456789abcdef"},
//!     "bearer_auth": {"digest": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="},
//!     "allowed_hosts": ["api.example.com"]
//! }"#;
//! let checked = validate::check(json).expect("a secret");
//! assert!(checked.errors.is_empty(), "{:?}", checked.errors);
//! let sealed = checked.secret.seal(&seal_key); // base64, for Proxy-Tokenizer
//!
//! // A misspelt key is refused with the right spelling, as `tokenizer seal` does.
//! let typo = br#"{"inject_processor": {"tokn": "x"}, "no_auth": {}}"#;
//! let problems = match validate::check(typo) {
//!     Ok(checked) => checked.errors,
//!     Err(problems) => problems,
//! };
//! assert!(problems.iter().any(|p| p.to_string().contains("token")));
//!
//! // Only the tokenizer, holding the open key, can read it back.
//! let opened = Secret::open(&OpenKeys::new(open, vec![]), &sealed).expect("opens");
//! assert_eq!(opened, checked.secret);
//! ```

pub mod auth;
pub mod exchange;
pub mod policy;
pub mod presets;
pub mod secret;
