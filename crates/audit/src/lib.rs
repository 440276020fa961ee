#![warn(missing_docs)]
//! What the operator sees: the request log, metrics, the admin API and dashboard.
//!
//! - [`audit`]: one audit record per request, metrics, error responses;
//! - [`logging`]: the log format and subscriber set-up;
//! - [`admin`]: the admin listener (health, metrics, seal, dashboard, revocation).

pub mod admin;
pub mod audit;
pub mod logging;
