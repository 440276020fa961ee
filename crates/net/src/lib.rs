#![warn(missing_docs)]
//! Connections: dialing upstreams, forging certificates, serving listeners.
//!
//! - [`upstream`]: the one HTTP client (TLS roots, timeouts, the destination guard that keeps
//!   private addresses out of reach);
//! - [`ca`]: the sidecar's certificate authority, one forged leaf per SNI;
//! - [`lifecycle`]: listeners, connection slots, keep-alive and graceful shutdown.

pub mod ca;
pub mod lifecycle;
pub mod upstream;
