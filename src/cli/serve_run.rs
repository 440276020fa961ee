//! Running `tokenizer serve`: bind the listeners, start the admin API, serve until a
//! shutdown signal, drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Failure;
use super::listen::{bind, shutdown_signal};
use super::serve::ServeArgs;
use crate::admin::{self, AdminState};
use crate::proxy::config::ServeConfig;
use crate::proxy::{self, Proxy};
use tokenizer_core::settings as config;

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let log_format = args.admin.log_format;
    let debug = args.debug.as_deref().is_some_and(config::go_bool);
    let debug_tcp = args.debug_tcp.as_deref().is_some_and(config::go_bool);
    let config = args.into_config()?;
    let _log = crate::logging::init(log_format, debug);
    if debug_tcp {
        tracing::warn!("DEBUG_TCP is not supported: a byte dump would hold credentials");
    }
    let runtime = super::runtime::build()?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> Result<(), Failure> {
    let listener = bind(&config.listen).await?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let admin = match config.admin_address {
        Some(addr) => Some(bind(&[addr]).await?),
        None => None,
    };
    let admin_local = admin.as_ref().and_then(|l| l.local_addr().ok());
    let tls = match &config.tls_listener {
        Some(tls) => {
            let acceptor =
                proxy::tls_listener::acceptor(tls).map_err(|e| Failure::Input(e.to_string()))?;
            Some((bind(&tls.addresses).await?, acceptor))
        }
        None => None,
    };
    let tls_local = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
    let seal_key = config.keys.current().seal_key();
    let admin_token = config.admin_token.clone();
    let drain = config.drain_timeout;
    let own: Vec<SocketAddr> = std::iter::once(local)
        .chain(admin_local)
        .chain(tls_local)
        .collect();
    let proxy = Proxy::new(config, &own).map_err(|e| Failure::Input(e.to_string()))?;
    if let Some(fleet) = proxy.fleet()
        && !fleet.ready(Duration::from_secs(2)).await
    {
        tracing::warn!(
            failure = %fleet.failure(),
            "starting without the fleet view: Redis does not answer yet (REDIS_FAILURE applies)"
        );
    }
    let signal = shutdown_signal();
    tracing::info!(
        address = %local,
        admin = %crate::logging::listed(admin_local),
        tls_address = %crate::logging::listed(tls_local),
        seal_key = %seal_key.to_hex(),
        "listening"
    );

    crate::memory::spawn_trimmer();
    let stopping = CancellationToken::new();
    let done = CancellationToken::new();
    if let Some(listener) = admin {
        let state = AdminState {
            role: "serve",
            telemetry: proxy.telemetry().clone(),
            seal_key: Some(seal_key),
            admin_token: admin_token.map(Arc::new),
            stopping: stopping.clone(),
            fleet: proxy.fleet().cloned(),
        };
        let done = done.clone();
        tokio::spawn(admin::serve(
            listener,
            state,
            Box::pin(async move { done.cancelled().await }),
        ));
    }
    let signal = Box::pin(async move {
        signal.await;
        stopping.cancel();
    });
    proxy::serve_with_tls(listener, tls, proxy, signal, drain).await;
    done.cancel();
    tracing::info!("stopped");
    Ok(())
}
