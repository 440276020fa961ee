//! Binding listen addresses and the shutdown signal (`serve`, `sideproxy`).

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::Failure;

/// Bind the first address that works (`:port` tries IPv6-any, then IPv4-any).
pub async fn bind(addrs: &[SocketAddr]) -> Result<TcpListener, Failure> {
    let mut last = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(format!("cannot listen on {addr}: {e}")),
        }
    }
    Err(Failure::Runtime(
        last.unwrap_or_else(|| "no listen address".to_owned()),
    ))
}

/// SIGINT or SIGTERM. The handlers are installed when this is called (not when the
/// future is first polled), so a signal sent right after start-up is not lost.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = term => {}
                () = int => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
