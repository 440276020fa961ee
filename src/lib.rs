//! tokenizer: a credential-injecting proxy for sandboxed code and AI agents, wire
//! compatible with Fly.io's Go tokenizer.
//!
//! Clients send sealed secrets in `Proxy-Tokenizer`; the proxy opens them, checks who
//! may use them and where, injects the credential, and forwards over TLS.

// The workspace's lints for the binary's own code; the test targets of this package
// (whose helpers unwrap freely) are left out, which `[lints] workspace = true` would not.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub use tokenizer_audit::admin;
pub use tokenizer_audit::audit;
pub use tokenizer_http::body;
pub use tokenizer_net::ca;
pub use tokenizer_secret::auth;
pub mod cli;
pub use tokenizer_fleet::fleet;
pub use tokenizer_secret::exchange;
pub mod hardening;
pub use tokenizer_audit::logging;
pub use tokenizer_http::headers;
pub use tokenizer_net::lifecycle;
pub mod memory;
pub use tokenizer_http::reflection;
pub use tokenizer_http::upgrade;
pub use tokenizer_net::upstream;
pub use tokenizer_processor::pii;
pub use tokenizer_processor::processor;
pub use tokenizer_proxy::proxy;
pub use tokenizer_secret::policy;
pub use tokenizer_secret::presets;
pub use tokenizer_secret::secret;
pub use tokenizer_sidecar::sideproxy;
