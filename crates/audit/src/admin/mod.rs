//! The admin listener (`ADMIN_ADDRESS`), for `serve` and `sideproxy`: health, metrics,
//! the seal key, sealing (the stateless counterpart of a token API), revocation across
//! the fleet, the audit tail, and a live dashboard.

mod dashboard;
mod routes;

use futures_util::future::BoxFuture;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::Telemetry;
use tokenizer_core::{SealKey, SecretString};

/// What the admin routes see.
#[derive(Clone)]
pub struct AdminState {
    /// The process's role, `serve` or `sideproxy`, reported by `/v1/stats`.
    pub role: &'static str,
    /// The process's audit ring, metrics and totals (`/metrics`, `/v1/audit`, `/v1/stats`).
    pub telemetry: Arc<Telemetry>,
    /// The key `/v1/seal` seals to; `None` disables `/v1/sealkey` and `/v1/seal`.
    pub seal_key: Option<SealKey>,
    /// When set, `/v1/seal` and `/v1/audit` need `Authorization: Bearer <token>`.
    pub admin_token: Option<Arc<SecretString>>,
    /// Cancelled when the process starts shutting down: `/readyz` then answers 503.
    pub stopping: CancellationToken,
    /// The fleet's Redis (`serve` with `REDIS_URL`): `/readyz` reports it and
    /// `/v1/revoke` writes to it.
    pub fleet: Option<Arc<tokenizer_fleet::fleet::Fleet>>,
}

/// The admin API.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/v1/sealkey", get(routes::sealkey))
        .route("/v1/seal", post(routes::seal))
        .route("/v1/revoke", post(routes::revoke))
        .route("/v1/audit", get(routes::audit))
        .route("/v1/stats", get(routes::stats))
        .fallback(routes::not_found)
        .with_state(state)
}

/// Serve the admin API until `shutdown` resolves.
pub fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: BoxFuture<'static, ()>,
) -> BoxFuture<'static, ()> {
    // Boxed here, not `async fn`: rustc compiles an async fn's body again in every crate
    // that awaits it; a boxed future is compiled once, in this crate.
    Box::pin(serve_until(listener, state, shutdown))
}

async fn serve_until(listener: TcpListener, state: AdminState, shutdown: BoxFuture<'static, ()>) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "admin listener failed");
    }
}
