//! Admin route handlers. Errors are JSON: `{"error": "…"}` with a 4xx status.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AdminState;
use crate::audit::AuditQuery;
use tokenizer_secret::secret::sealed_digest;
use tokenizer_secret::secret::validate::{self, Problem};

/// A JSON error response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// With `ADMIN_TOKEN` set, the request must carry `Authorization: Bearer <token>`;
/// returns the refusal otherwise.
fn denied(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
    let token = state.admin_token.as_ref()?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "admin token required: send the ADMIN_TOKEN this tokenizer was started with as \
             `Authorization: Bearer <token>` (the dashboard asks for it)",
        ))
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `ready`, or 503 while shutting down. With `REDIS_URL`, a second line gives the fleet
/// view (`redis: up 0.4ms` / `redis: down`); Redis down makes the instance unready only
/// with `REDIS_FAILURE=closed`, where it would refuse every secret anyway.
pub async fn readyz(State(state): State<AdminState>) -> Response {
    if state.stopping.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let Some(fleet) = &state.fleet else {
        return "ready\n".into_response();
    };
    let health = fleet.health();
    let redis = if health.is_up() {
        format!("redis: up {:.1}ms", health.rtt().as_secs_f64() * 1000.0)
    } else {
        "redis: down".to_owned()
    };
    if !health.is_up() && fleet.failure() == tokenizer_fleet::fleet::FailureMode::Closed {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{redis} (REDIS_FAILURE=closed)\n"),
        )
            .into_response();
    }
    format!("ready\n{redis}\n").into_response()
}

pub async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.telemetry.metrics.encode(),
    )
        .into_response()
}

pub async fn sealkey(State(state): State<AdminState>) -> Response {
    match &state.seal_key {
        Some(key) => Json(json!({"seal_key": key.to_hex()})).into_response(),
        None => error(StatusCode::NOT_FOUND, "no seal key configured"),
    }
}

#[derive(Deserialize)]
pub struct SealOptions {
    #[serde(default)]
    deny_warnings: bool,
    #[serde(default)]
    lenient: bool,
}

/// `POST /v1/seal`: the body is a secret (JSON, as for `tokenizer seal --json`), checked
/// by the same validator as the CLI. Answers `{"sealed_token", "digest", "warnings"}`; a
/// secret with mistakes is 400 with `{"error", "errors": ["key: what", …]}` unless
/// `?lenient=true` (then they are warnings); `?deny_warnings=true` refuses warnings too.
pub async fn seal(
    State(state): State<AdminState>,
    headers: HeaderMap,
    options: Result<Query<SealOptions>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    if let Some(refusal) = denied(&state, &headers) {
        return refusal;
    }
    let Ok(Query(options)) = options else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad query: deny_warnings=true|false, lenient=true|false",
        );
    };
    let Some(key) = &state.seal_key else {
        return error(StatusCode::NOT_FOUND, "no seal key configured");
    };
    let body = zeroize::Zeroizing::new(body.to_vec());
    let list = |problems: &[Problem]| -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    };
    let checked = match validate::check(&body) {
        Ok(checked) => checked,
        Err(problems) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "not a secret", "errors": list(&problems)})),
            )
                .into_response();
        }
    };
    if !checked.errors.is_empty() && !options.lenient {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "refused: the secret has mistakes (lenient=true seals anyway)",
                "errors": list(&checked.errors),
            })),
        )
            .into_response();
    }
    let secret = checked.secret;
    let mut warnings = list(&checked.errors);
    warnings.extend(checked.warnings);
    if options.deny_warnings && !warnings.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "refused because of warnings", "warnings": warnings})),
        )
            .into_response();
    }
    let sealed = secret.seal(key);
    Json(json!({
        "sealed_token": sealed,
        "digest": sealed_digest(&sealed),
        "warnings": warnings,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    id: Option<String>,
    digest: Option<String>,
    sealed: Option<String>,
}

/// `POST /v1/revoke` `{"id": …}`, `{"digest": …}` or `{"sealed": …}`: add to the fleet's
/// revocations; every instance refuses the secret within a second. Needs `ADMIN_TOKEN`
/// (an open admin listener must not let anyone revoke) and `REDIS_URL`.
pub async fn revoke(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    if state.admin_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "set ADMIN_TOKEN to enable /v1/revoke",
        );
    }
    if let Some(refusal) = denied(&state, &headers) {
        return refusal;
    }
    let Some(fleet) = &state.fleet else {
        return error(
            StatusCode::CONFLICT,
            "no REDIS_URL: revoke with REVOKED_SECRETS_FILE",
        );
    };
    let body = zeroize::Zeroizing::new(body.to_vec());
    let request: RevokeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "want {\"id\": …}, {\"digest\": …} or {\"sealed\": …}",
            );
        }
    };
    let entry = match (request.id, request.digest, request.sealed) {
        (Some(id), None, None) => id,
        (None, Some(digest), None) => digest,
        (None, None, Some(sealed)) => sealed_digest(&sealed),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of id, digest, sealed",
            );
        }
    };
    let entry = match tokenizer_fleet::fleet::revocations::entry(&entry) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match fleet.revoke(&entry).await {
        Ok(()) => {
            tracing::info!(entry = %entry, "revoked across the fleet");
            Json(json!({"revoked": entry})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub async fn audit(
    State(state): State<AdminState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Some(refusal) = denied(&state, &headers) {
        return refusal;
    }
    let query: AuditQuery = match serde_urlencoded::from_str(raw.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad query: {e}")),
    };
    match state.telemetry.ring.query(&query) {
        Ok(entries) => Json(json!({"count": entries.len(), "entries": entries})).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// Totals since start, for the dashboard.
pub async fn stats(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Some(refusal) = denied(&state, &headers) {
        return refusal;
    }
    Json(json!({
        "role": state.role,
        "totals": state.telemetry.totals(),
        "ring": state.telemetry.ring.len(),
    }))
    .into_response()
}

pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}
