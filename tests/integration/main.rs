//! Integration tests: the real proxy on 127.0.0.1:0, real TLS upstreams signed by a
//! test CA, real clients.

#[allow(dead_code)]
mod support;

mod bad_input;
mod cli;
mod cross_impl;
mod go_checklist;
mod logs;
mod proxying;
mod sideproxy;
mod sideproxy_cli;
