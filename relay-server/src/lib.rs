//! The hooktunnel relay: public HTTP ingress, the agent WebSocket and the
//! wire protocol they share.
//!
//! | module | role |
//! | --- | --- |
//! | [`protocol`] | frames and messages; no I/O, no axum |
//! | [`config`] | validated relay settings |
//! | [`durable`] | name ownership and the offline queue (SQLite, behind traits) |
//! | `state` | live tunnels, requests awaiting answers, counters |
//! | `routes` | ingress, agent socket, health |
//!
//! The binary, the CLI's embedded relay and the tests all run [`serve`] on a
//! listener they bound themselves, so tests never race for a port.

pub mod config;
pub mod durable;
pub mod name;
pub mod protocol;
mod routes;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
pub use config::RelayConfig;
use tokio::net::TcpListener;

/// Serves the relay on `listener` until `shutdown` resolves.
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
    if config.data_dir.is_none() {
        tracing::warn!(
            "no --data-dir: the offline queue and name registry live in memory and are lost on restart"
        );
    }
    let state = Arc::new(state::AppState::new(config, local_addr).map_err(std::io::Error::other)?);
    let app = routes::router(state.clone());
    let listener = listener.tap_io(|tcp| {
        // Small webhook requests must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let drain = {
        let stop = stop.clone();
        let state = state.clone();
        async move {
            shutdown.await;
            stop.cancel();
            let deadline = tokio::time::Instant::now() + config::DRAIN_TIMEOUT;
            while state.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            state.closing.cancel();
        }
    };
    let drainer = tokio::spawn(drain);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await;
    drainer.abort();
    state.closing.cancel();
    served
}
