#![warn(missing_docs)]
//! What a secret does to a request: one file per processor wire key, the steps they build
//! and run over the request head and body (header injection, HMAC, streaming body
//! replacement, JWT and GitHub App assertions, SigV4), and PII scanning of request bodies.

pub mod pii;
pub mod processor;
