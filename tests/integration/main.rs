//! Integration tests: the real proxy on 127.0.0.1:0, real TLS upstreams signed by a
//! test CA, real clients.

#[allow(dead_code)]
mod support;

mod admin;
mod caller_identity;
mod cli;
mod credential_forms;
mod credential_reflection;
mod cross_impl;
mod dashboard;
mod destination_guard;
mod fleet;
mod fleet_failures;
mod fly_src;
mod go_checklist;
mod go_dropin;
mod host_pinning;
mod limit_parity;
mod logs;
mod macaroon;
mod macaroon_cli;
mod malformed_secrets;
mod mcp_rules;
mod mcp_sdk;
mod mtls;
mod newcomer;
mod oidc;
mod pii;
mod process_hardening;
mod proxying;
mod readme;
mod request_framing;
mod resource_limits;
mod rule_interpretation;
mod rules;
mod secret_isolation;
mod shared_tables;
mod shutdown;
mod sidecar_dns;
mod sidecar_http2;
mod sideproxy;
mod sideproxy_cli;
mod sigv4;
mod token_exchange;
mod upstream_faults;
