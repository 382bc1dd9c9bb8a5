//! The hooktunnel relay: public HTTP ingress, the agent WebSocket and the
//! wire protocol they share.
//!
//! | module | role |
//! | --- | --- |
//! | [`protocol`] | frames and messages, the `x-hooktunnel-error` codes; no I/O, no axum |
//! | [`config`] | validated relay settings |
//! | [`durable`] | name ownership and the offline queue: SQLite behind traits, owned by one database thread |
//! | `error` | every answer the relay gives itself, one enum implementing `IntoResponse` |
//! | `state` | live tunnels, requests awaiting answers, counters |
//! | `session` | one agent per tunnel: who may replace a live session |
//! | `refusals` | coalesced notes to an agent about requests the relay refused |
//! | `routes` | the router: guard middleware, ingress, agent socket, health, metrics |
//! | [`wire`] | the batched WebSocket writer loop (relay and agent) |
//! | [`tls`] | the rustls acceptor for `--tls-cert`/`--tls-key` |
//! | `auth`, `forwarded`, `limit` | token checks, forwarding headers, rate limits |
//! | `accept` | per-address connection cap, accept back-off, `nofile` raise |
//!
//! Dependencies point one way: `routes` → `state`, `limit`, `error` →
//! `durable`, `config`, `protocol`.
//!
//! The binary, the CLI's embedded relay and the tests all run [`serve`] on a
//! listener they bound themselves, so tests never race for a port.

mod accept;
mod auth;
pub mod cluster;
pub mod config;
pub mod durable;
mod error;
mod forwarded;
mod io_timeout;
mod limit;
pub mod memory;
pub mod metrics;
pub mod name;
/// The wire protocol lives in its own crate; re-exported so relay code
/// (and older callers) keep the short path.
pub use hooktunnel_protocol as protocol;
mod refusals;
mod routes;
mod session;
mod state;
pub mod streams;
pub mod tls;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::RelayConfig;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::routes::ConnInfo;
use crate::state::AppState;

/// How often idle rate-limit state is dropped.
const LIMITER_SWEEP: Duration = Duration::from_secs(60);

/// Serves the relay on `listener` until `shutdown` resolves.
///
/// HTTP/1.1 (and WebSocket upgrades) over plain TCP, or TLS when
/// `config.tls` is set. Heads larger than [`config::MAX_HEAD_BYTES`] or with
/// more than [`config::MAX_HEADERS`] fields get 431 from hyper; a head not
/// complete within `header_read_timeout` closes the connection.
///
/// On shutdown the relay stops accepting connections, lets in-flight
/// requests finish (at most [`config::DRAIN_TIMEOUT`]), then closes agent
/// sockets. Queued requests stay in the data dir for the next start.
pub async fn serve(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    accept::raise_nofile_limit();
    if config.data_dir.is_none() && config.cluster.is_none() {
        tracing::warn!(
            "no --data-dir: the offline queue and name registry live in memory and are lost on restart"
        );
    }
    let tls = match &config.tls {
        Some(files) => Some(tls::acceptor(files).map_err(std::io::Error::other)?),
        None => None,
    };
    // Cluster mode (#15): names and queue in Redis instead of SQLite.
    let mut internal = None;
    let cluster = match &config.cluster {
        Some(settings) => {
            let mut settings = settings.clone();
            if let Some(addr) = settings.internal_listen {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot listen on --internal-listen {addr}: {e}"),
                    )
                })?;
                // Port 0 (tests): advertise the port actually bound.
                settings.internal_listen = Some(listener.local_addr()?);
                internal = Some(listener);
            }
            let advertised = cluster::advertised(&settings);
            Some(Arc::new(
                cluster::Cluster::connect(settings, &advertised)
                    .await
                    .map_err(std::io::Error::other)?,
            ))
        }
        None => None,
    };
    let durable = match &cluster {
        Some(cluster) => {
            let store = cluster.store.clone();
            let runtime = tokio::runtime::Handle::current();
            durable::Durable::start(move || Ok(cluster::RedisDurable::new(store, runtime))).await
        }
        None => durable::Durable::open(config.data_dir.as_deref()).await,
    }
    .map_err(std::io::Error::other)?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on --metrics-listen {addr}: {e}"),
            )
        })?),
        None => None,
    };
    let stored_rules = durable
        .all_edge_rules()
        .await
        .map_err(std::io::Error::other)?;
    let mut state = AppState::new(config, local_addr, tls.is_some(), durable);
    state.cluster = cluster;
    let state = Arc::new(state);
    if let Some(cluster) = &state.cluster {
        cluster.routes.attach(&state);
        cluster.notes.attach(&state);
    }
    if let Some(listener) = internal {
        tokio::spawn(cluster::internal::serve(listener, state.clone()));
    }
    for (name, json) in stored_rules {
        match serde_json::from_str(&json) {
            Ok(rules) => state.set_edge_rules(&name, rules),
            Err(e) => tracing::error!(tunnel = %name, error = %e, "unreadable stored edge rules"),
        }
    }
    let app = routes::router(state.clone());
    let metrics_server = metrics_listener.map(|listener| {
        let app = routes::metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        })
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .max_headers(config::MAX_HEADERS)
        .max_header_size(config::MAX_HEAD_BYTES)
        .keep_alive(true);
    let stop = CancellationToken::new();
    let drainer = tokio::spawn({
        let stop = stop.clone();
        let state = state.clone();
        async move {
            shutdown.await;
            stop.cancel();
            let deadline = tokio::time::Instant::now() + config::DRAIN_TIMEOUT;
            while state.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            state.closing.cancel();
        }
    });
    let sweeper = tokio::spawn({
        let state = state.clone();
        async move {
            let mut tick = tokio::time::interval(LIMITER_SWEEP);
            loop {
                tick.tick().await;
                if let Some(l) = &state.ip_limiter {
                    l.forget_idle();
                }
                if let Some(l) = &state.tunnel_limiter {
                    l.forget_idle();
                }
            }
        }
    });
    let connections = TaskTracker::new();
    let per_ip = accept::ConnLimiter::new(state.config.max_conns_per_ip.max(1));
    let mut backoff = accept::AcceptBackoff::default();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause (doubling),
                    // keep serving, and log once per interval with a count.
                    state.metrics.accept_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let (pause, report) = backoff.failed(std::time::Instant::now());
                    if let Some(failures) = report {
                        tracing::warn!(error = %e, failures, "accept failed; backing off");
                    }
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        // The TCP peer, not a forwarded address: this guards the relay's own sockets.
        let Some(held) = per_ip.try_hold(limit::ip_key(peer.ip())) else {
            state
                .metrics
                .conns_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        // Small webhook requests must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            http: http.clone(),
            stop: stop.clone(),
            write_timeout: state.config.write_timeout,
        };
        match &tls {
            None => {
                connections.spawn(async move {
                    conn.serve(tcp, ConnInfo { peer, tls: false }).await;
                    drop(held);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let _held = held;
                    let handshake = acceptor.accept(tcp);
                    match tokio::time::timeout(config::TLS_HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => conn.serve(stream, ConnInfo { peer, tls: true }).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    connections.close();
    // Connections finish their current request; the drainer closes agent
    // sockets after DRAIN_TIMEOUT, which answers whatever still waits.
    let grace = config::DRAIN_TIMEOUT + Duration::from_secs(5);
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown; closing them");
    }
    drainer.abort();
    sweeper.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    state.closing.cancel();
    // Agents get a close frame with the reason before the process exits.
    state.sessions.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), state.sessions.wait()).await;
    Ok(())
}

/// One accepted connection's share of the relay.
struct Connection {
    app: axum::Router,
    http: hyper::server::conn::http1::Builder,
    stop: CancellationToken,
    write_timeout: Duration,
}

impl Connection {
    async fn serve<I>(self, io: I, info: ConnInfo)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            http,
            stop,
            write_timeout,
        } = self;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let app = app.clone();
            async move {
                req.extensions_mut().insert(info);
                app.oneshot(req).await
            }
        });
        let conn = http
            .serve_connection(
                TokioIo::new(io_timeout::WriteTimeout::new(io, write_timeout)),
                service,
            )
            .with_upgrades();
        tokio::pin!(conn);
        let served = tokio::select! {
            served = conn.as_mut() => served,
            () = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = served {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
        }
    }
}
