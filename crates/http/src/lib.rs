#![warn(missing_docs)]
//! HTTP plumbing the proxy and the sidecar share: the one body type, bounded reading within
//! a budget, the stall timeout, the streaming-rewrite loop ([`body`]); hop-by-hop and proxy
//! headers ([`headers`]); the reflection guard that masks credentials in what comes back
//! ([`reflection`]); splicing upgraded (WebSocket) streams ([`upgrade`]).

pub mod body;
pub mod headers;
pub mod reflection;
pub mod upgrade;
