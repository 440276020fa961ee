//! `tokenizer sideproxy`: the TLS-forging sidecar. Unmodified clients holding dummy
//! keys reach it as if it were the API (hosts file or `HTTPS_PROXY`); it forwards each
//! request through the tokenizer with the sealed secret for that host.

pub mod config;
mod connect_proxy;
pub mod dns;
pub mod env;
mod error;
pub mod firewall;
mod forward;
mod passthrough_http;
mod tls;
mod tokenizer_client;
mod transparent;

use futures_util::future::BoxFuture;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderValue;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use config::SideproxyConfig;
pub use error::SidecarError;
pub use tokenizer_client::TokenizerError;

use tokenizer_client::TokenizerClient;
use tokenizer_net::ca::{CaError, CertCache, CertificateAuthority, Provenance};
use tokenizer_net::lifecycle::Lifecycle;
use tokenizer_net::upstream::guard::listener_addrs;
use tokenizer_net::upstream::{DestinationGuard, Resolver};

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The CA in `CA_DIR` could not be loaded or generated.
    #[error("CA: {0}")]
    Ca(#[from] CaError),
    /// The TLS roots for connections out could not be loaded (`UPSTREAM_CA_FILE`).
    #[error("{0}")]
    Tls(#[from] tokenizer_net::upstream::tls::TlsConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `CA_DIR/bundle.pem` (system roots plus the CA) could not be written.
    #[error("writing the CA bundle: {0}")]
    Bundle(std::io::Error),
    /// rustls refused the TLS server configuration.
    #[error("TLS server setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The running sidecar's shared state.
pub struct Sidecar {
    config: SideproxyConfig,
    certs: Arc<CertCache>,
    acceptor: TlsAcceptor,
    tokenizer: TokenizerClient,
    proxy_authorization: Option<HeaderValue>,
    resolver: Resolver,
    guard: DestinationGuard,
    lifecycle: Lifecycle,
    telemetry: Arc<tokenizer_audit::audit::Telemetry>,
}

/// A sidecar with its listeners bound, ready to run.
pub struct Bound {
    side: Arc<Sidecar>,
    tls: Vec<TcpListener>,
    proxy: Option<TcpListener>,
    transparent: Vec<TcpListener>,
    admin: Option<TcpListener>,
    dns: Option<dns::DnsServer>,
    provenance: Provenance,
}

impl Sidecar {
    /// Load or make the CA, bind the listeners and build the shared state.
    pub fn bind(config: SideproxyConfig) -> BoxFuture<'static, Result<Bound, SetupError>> {
        // Boxed for the reason given at [`Bound::run`].
        Box::pin(Self::bind_all_listeners(config))
    }

    async fn bind_all_listeners(config: SideproxyConfig) -> Result<Bound, SetupError> {
        let tls = bind_all(&config.bind, config.port).await?;
        let proxy = match config.https_proxy_address {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| SetupError::Bind { addr, source })?,
            ),
            None => None,
        };
        let transparent = match config.transparent_port {
            Some(port) => bind_all(&config.bind, port).await?,
            None => Vec::new(),
        };
        let admin = match config.admin_address {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| SetupError::Bind { addr, source })?,
            ),
            None => None,
        };

        let targets: Vec<String> = config.targets.hosts().cloned().collect();
        let (ca, provenance) = CertificateAuthority::load_or_generate(&config.ca_dir, &targets)?;
        env::write_bundle(&config.ca_dir, ca.cert_pem()).map_err(SetupError::Bundle)?;
        let telemetry = tokenizer_audit::audit::Telemetry::new(config.audit_ring_size, false);
        let names = targets.into_iter().chain([tls::CA_HOST.to_owned()]);
        let certs = Arc::new(CertCache::new(ca, names, 4096).with_counters(
            telemetry.metrics.cert_cache_hits.clone(),
            telemetry.metrics.cert_cache_misses.clone(),
        ));
        certs.warm();

        let mut server =
            rustls::ServerConfig::builder_with_provider(tokenizer_net::upstream::tls::provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(certs.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let client_tls =
            tokenizer_net::upstream::tls::client_config(config.upstream.ca_file.as_deref())?;
        let tokenizer = TokenizerClient::new(
            &config.proxy,
            client_tls,
            config.tokenizer_timeout,
            config.proxy_http2,
            config.upstream.connect_timeout,
        );
        let proxy_authorization = config.tokenizer_auth.as_ref().and_then(|t| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).ok()?;
            v.set_sensitive(true);
            Some(v)
        });

        let mut own: Vec<SocketAddr> = Vec::new();
        for l in tls
            .iter()
            .chain(proxy.as_ref())
            .chain(&transparent)
            .chain(admin.as_ref())
        {
            if let Ok(addr) = l.local_addr() {
                own.extend(listener_addrs(addr));
            }
        }
        let guard = DestinationGuard::new(
            config.upstream.allow.clone(),
            config.upstream.deny.clone(),
            own,
        );
        let dns = match &config.dns {
            Some(dns_config) => {
                // Transparent mode: targets resolve to the DNS address itself, whose
                // TCP 80/443 the firewall redirects to the transparent listener (other
                // local addresses it leaves alone). Otherwise to the TLS listener.
                let answer_with = match config.transparent_port {
                    Some(_) => vec![dns_config.address.ip()],
                    None => config.bind.clone(),
                };
                let rules = dns::names::NameRules::new(
                    config.targets.hosts(),
                    config.passthrough.clone(),
                    dns_config.allow.clone(),
                    &answer_with,
                );
                let addr = dns_config.address;
                Some(
                    dns::DnsServer::bind(dns_config, rules, telemetry.clone())
                        .await
                        .map_err(|source| SetupError::Bind { addr, source })?,
                )
            }
            None => None,
        };
        let max_connections = config.max_connections;
        let side = Arc::new(Self {
            resolver: config.upstream.resolver.clone(),
            config,
            certs,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            tokenizer,
            proxy_authorization,
            guard,
            lifecycle: Lifecycle::with_max_connections(max_connections)
                .counting(telemetry.metrics.connections_open.clone()),
            telemetry,
        });
        Ok(Bound {
            side,
            tls,
            proxy,
            transparent,
            admin,
            dns,
            provenance,
        })
    }
}

impl Bound {
    /// Addresses of the TLS listeners.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Addresses of the transparent listeners (`TRANSPARENT_PORT`).
    pub fn transparent_addrs(&self) -> Vec<SocketAddr> {
        self.transparent
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Address of the DNS listener (UDP and TCP).
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.as_ref().and_then(dns::DnsServer::local_addr)
    }

    /// Address of the HTTPS_PROXY listener.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        self.side.certs.ca().cert_pem().to_owned()
    }

    /// Serve until `shutdown` resolves, then drain.
    pub fn run(self, shutdown: BoxFuture<'static, ()>) -> BoxFuture<'static, ()> {
        // Boxed here, not `async fn`: rustc compiles an async fn's body again in every
        // crate that awaits it; a boxed future is compiled once, in this crate.
        Box::pin(self.serve_until(shutdown))
    }

    async fn serve_until(self, shutdown: BoxFuture<'static, ()>) {
        let side = self.side;
        tracing::info!(
            tls = %tokenizer_audit::logging::listed(self.tls.iter().filter_map(|l| l.local_addr().ok())),
            https_proxy = %tokenizer_audit::logging::listed(self.proxy.as_ref().and_then(|l| l.local_addr().ok())),
            transparent = %tokenizer_audit::logging::listed(self.transparent.iter().filter_map(|l| l.local_addr().ok())),
            dns = %tokenizer_audit::logging::listed(self.dns.as_ref().and_then(dns::DnsServer::local_addr)),
            targets = %tokenizer_audit::logging::listed(side.config.targets.hosts()),
            ca = %side.config.ca_dir.join("ca.pem").display(),
            ca_provenance = %self.provenance,
            "sideproxy listening"
        );
        let lifecycle = side.lifecycle.clone();
        let mut accepting = tokio::task::JoinSet::new();
        for listener in self.tls {
            let (side, lifecycle) = (side.clone(), lifecycle.clone());
            accepting.spawn(async move {
                lifecycle
                    .accept(listener, move |stream, peer, stop| {
                        tls::serve(side.clone(), stream, peer, stop, None)
                    })
                    .await;
            });
        }
        for listener in self.transparent {
            let (side, lifecycle) = (side.clone(), lifecycle.clone());
            accepting.spawn(async move {
                lifecycle
                    .accept(listener, move |stream, peer, stop| {
                        transparent::serve(side.clone(), stream, peer, stop)
                    })
                    .await;
            });
        }
        if let Some(dns) = self.dns {
            accepting.spawn(dns.run());
        }
        if let Some(listener) = self.proxy {
            let (side, lifecycle) = (side.clone(), lifecycle.clone());
            accepting.spawn(async move {
                lifecycle
                    .accept(listener, move |stream, peer, stop| {
                        connect_proxy::serve(side.clone(), stream, peer, stop)
                    })
                    .await;
            });
        }
        let done = tokio_util::sync::CancellationToken::new();
        if let Some(listener) = self.admin {
            let state = tokenizer_audit::admin::AdminState {
                role: "sideproxy",
                telemetry: side.telemetry.clone(),
                seal_key: side.config.seal_key.clone(),
                admin_token: side.config.admin_token.clone().map(Arc::new),
                stopping: lifecycle.stop.clone(),
                fleet: None,
            };
            let done = done.clone();
            tokio::spawn(tokenizer_audit::admin::serve(
                listener,
                state,
                Box::pin(async move { done.cancelled().await }),
            ));
        }
        shutdown.await;
        lifecycle.drain(side.config.drain_timeout).await;
        accepting.abort_all();
        done.cancel();
    }
}

/// Bind `port` on every address. An address the host does not have (say `::1` without
/// IPv6) is skipped with a warning as long as another one binds.
async fn bind_all(addrs: &[IpAddr], port: u16) -> Result<Vec<TcpListener>, SetupError> {
    let mut out = Vec::new();
    let mut first_error = None;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match TcpListener::bind(addr).await {
            Ok(l) => out.push(l),
            Err(source) if source.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tracing::warn!(%addr, error = %source, "skipping a listen address this host lacks");
                first_error.get_or_insert(SetupError::Bind { addr, source });
            }
            Err(source) => return Err(SetupError::Bind { addr, source }),
        }
    }
    match (out.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}
