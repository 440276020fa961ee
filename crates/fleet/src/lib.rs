#![warn(missing_docs)]
//! Fleet-wide state on Redis: rate limits and revocation shared by every replica.
//!
//! The local tables in [`tokenizer_secret::policy`] answer for one process; this crate answers
//! for the fleet with the same rules, failing closed when Redis answers something unexpected.

pub mod fleet;
