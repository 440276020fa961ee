//! Integration tests: the real proxy on 127.0.0.1:0, real TLS upstreams signed by a
//! test CA, real clients.

#[allow(dead_code)]
mod support;

mod admin;
mod adversarial;
mod bad_input;
mod cli;
mod cross_impl;
mod dashboard;
mod fleet;
mod fly_src;
mod go_checklist;
mod go_dropin;
mod logs;
mod macaroon;
mod macaroon_cli;
mod mtls;
mod newcomer;
mod oidc;
mod outside_attack;
mod pii;
mod proxying;
mod readme;
mod rules;
mod second_attack;
mod shutdown;
mod sideproxy;
mod sideproxy_cli;
mod sigv4;
mod token_exchange;
