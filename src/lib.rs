//! tokenizer: a credential-injecting proxy for sandboxed code and AI agents, wire
//! compatible with Fly.io's Go tokenizer.
//!
//! Clients send sealed secrets in `Proxy-Tokenizer`; the proxy opens them, checks who
//! may use them and where, injects the credential, and forwards over TLS.

pub mod admin;
pub mod audit;
pub mod auth;
pub use tokenizer_http::body;
pub mod ca;
pub mod cli;
pub mod exchange;
pub mod fleet;
pub mod hardening;
pub use tokenizer_http::headers;
pub mod lifecycle;
pub mod logging;
pub mod memory;
pub use tokenizer_processor::pii;
pub mod policy;
pub mod presets;
pub use tokenizer_processor::processor;
pub mod proxy;
pub use tokenizer_http::reflection;
pub mod secret;
pub mod sideproxy;
pub use tokenizer_http::upgrade;
pub mod upstream;
