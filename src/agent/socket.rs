//! Opening the WebSocket to the relay: its URL, the token, TLS (the public
//! roots plus `--ca-cert`) and message limits; nothing is said on it yet.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use hooktunnel_protocol::{self as protocol, MAX_HEADER_BYTES};

use super::{AgentError, AgentOptions};
use crate::error_chain::root_cause;

/// WebSocket read buffer. tungstenite's default (128 KiB) is zero-filled on
/// every read, which costs more than it saves at webhook sizes; larger frames
/// still grow the buffer as they arrive.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Largest WebSocket message accepted from the relay (a queued delivery).
const MAX_CONTROL_FRAME: usize = 1024 * 1024 * 1024 + MAX_HEADER_BYTES;
/// A WebSocket to the relay.
pub(super) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The WebSocket URL for a relay base URL.
pub fn connect_url(relay: &str) -> Result<String, AgentError> {
    let relay = relay.trim_end_matches('/');
    let ws = if let Some(rest) = relay.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = relay.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if relay.starts_with("ws://") || relay.starts_with("wss://") {
        relay.to_owned()
    } else {
        return Err(AgentError::BadRelayUrl(relay.to_owned()));
    };
    Ok(format!("{ws}{}", protocol::CONNECT_PATH))
}

/// Opens the WebSocket to the relay (token, TLS, limits); nothing said yet.
pub(super) async fn open_socket(
    opts: &AgentOptions,
    config_hint: &str,
) -> Result<Socket, AgentError> {
    let url = connect_url(&opts.relay)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|_| AgentError::BadRelayUrl(opts.relay.clone()))?;
    if let Some(token) = &opts.token {
        let value = format!("Bearer {token}").parse().map_err(|_| {
            AgentError::Protocol("the token contains characters not allowed in a header".into())
        })?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    // Live bodies stream in small messages; only queued deliveries travel
    // whole, bounded by the relay's --queue-max-entry, whatever it is set to.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_CONTROL_FRAME))
        .max_frame_size(Some(MAX_CONTROL_FRAME));
    let connector = match &opts.ca_cert {
        Some(path) => Some(tls_connector(path)?),
        None => None,
    };
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    let (socket, _) = tokio::time::timeout(hooktunnel_relay::config::HANDSHAKE_TIMEOUT, connecting)
        .await
        .map_err(|_| AgentError::Connect {
            relay: opts.relay.clone(),
            reason: "timed out".into(),
        })?
        .map_err(|e| match e {
            tungstenite::Error::Http(resp) if resp.status() == 401 && opts.token.is_none() => {
                AgentError::TokenRequired {
                    relay: opts.relay.clone(),
                    config: config_hint.to_owned(),
                }
            }
            tungstenite::Error::Http(resp) if resp.status() == 401 => AgentError::Unauthorized {
                relay: opts.relay.clone(),
                config: config_hint.to_owned(),
            },
            tungstenite::Error::Http(resp) => AgentError::Connect {
                relay: opts.relay.clone(),
                reason: format!("HTTP {} (is this a hooktunnel relay?)", resp.status()),
            },
            other => AgentError::Connect {
                relay: opts.relay.clone(),
                reason: connect_hint(&url, root_cause(&other)),
            },
        })?;
    Ok(socket)
}

/// Adds what to do to the common connection failures: plain HTTP sent to a
/// TLS port (the answer is a TLS alert, which does not parse as HTTP), and a
/// certificate from a CA nobody configured.
fn connect_hint(url: &str, reason: String) -> String {
    if url.starts_with("ws://") && reason.contains("HTTP version") {
        format!("{reason} (the relay looks like it speaks TLS: use https:// in --relay)")
    } else if reason.contains("UnknownIssuer") {
        format!(
            "{reason} (the relay's certificate is from an unknown CA: pass its CA with --ca-cert FILE or HOOKTUNNEL_CA_CERT)"
        )
    } else {
        reason
    }
}

/// A TLS connector trusting the public web roots plus the CA in `path`.
fn tls_connector(path: &std::path::Path) -> Result<tokio_tungstenite::Connector, AgentError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let fail = |reason: String| AgentError::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| fail(format!("not a PEM certificate ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("not a usable CA certificate ({e})")))?;
        added += 1;
    }
    if added == 0 {
        return Err(fail("no `BEGIN CERTIFICATE` block found".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}
