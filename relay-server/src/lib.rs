//! The hooktunnel relay: public HTTP ingress, the agent WebSocket and the
//! wire protocol they share.
//!
//! | module | role |
//! | --- | --- |
//! | [`protocol`] | frames and messages; no I/O, no axum |
//! | [`config`] | validated relay settings |
//! | `state` | the tunnel registry and requests awaiting answers |
//! | `routes` | ingress, agent socket, health |
//!
//! The binary, the CLI's embedded relay and the tests all run [`serve`] on a
//! listener they bound themselves, so tests never race for a port.

pub mod config;
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

/// Builds the relay's router for a given state (exposed for in-process use).
pub fn router(config: RelayConfig, local_addr: SocketAddr) -> axum::Router {
    let state = Arc::new(state::AppState::new(config, local_addr));
    routes::router(state)
}

/// Serves the relay on `listener` until `shutdown` resolves.
///
/// In-flight requests are allowed to finish; agent sockets are closed.
pub async fn serve(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    let app = router(config, local_addr);
    let listener = listener.tap_io(|tcp| {
        // Small webhook requests must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
