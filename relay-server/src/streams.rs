//! The relay's end of protocol v2: HTTP/2 streams to one agent, over the
//! session's stream pipe (see [`crate::protocol::stream`]). The relay is the
//! HTTP/2 client: each live public request opens a stream.

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::protocol::stream::{
    CONNECTION_WINDOW, MAX_META_BYTES, META_HEADER, MetaError, SEND_BUFFER, STREAM_WINDOW,
    decode_meta, encode_meta,
};
use crate::protocol::{Request, Response};

/// Opens streams on one agent's HTTP/2 connection; cheap to clone.
#[derive(Clone, Debug)]
pub struct Streams {
    send: hyper::client::conn::http2::SendRequest<Body>,
    /// Sent on every stream besides the head (node-to-node: tunnel and secret).
    extra: http::HeaderMap,
}

/// Why a stream gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The connection or the stream ended first (agent gone, or the request
    /// body failed; the body's own verdict says which).
    #[error("the stream ended before an answer: {0}")]
    Ended(#[from] hyper::Error),
    /// The agent's answer had no usable head.
    #[error("{0}")]
    BadHead(#[from] MetaError),
    /// The request head could not be put in an HTTP/2 request.
    #[error("the request could not be framed: {0}")]
    Framing(#[from] http::Error),
}

/// Starts the HTTP/2 client on `io`; the returned future drives the
/// connection and ends with it (dropping it fails every open stream at once).
pub async fn connect<IO>(
    io: IO,
) -> Result<(Streams, impl Future<Output = ()> + Send + 'static), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connect_with(io, None).await
}

/// [`connect`], with HTTP/2 pings every `keepalive` when set: a peer that
/// does not answer one within that time ends the connection (and every
/// stream on it), so a paused or cut-off node fails fast instead of hanging.
pub async fn connect_with<IO>(
    io: IO,
    keepalive: Option<std::time::Duration>,
) -> Result<(Streams, impl Future<Output = ()> + Send + 'static), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    if let Some(every) = keepalive {
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(every)
            .keep_alive_timeout(every)
            .keep_alive_while_idle(true);
    }
    let (send, conn) = builder
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buf_size(SEND_BUFFER)
        .max_header_list_size(MAX_META_BYTES)
        .handshake(TokioIo::new(io))
        .await?;
    let driver = async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "agent stream connection ended");
        }
    };
    Ok((
        Streams {
            send,
            extra: http::HeaderMap::new(),
        },
        driver,
    ))
}

impl Streams {
    /// Opens one stream with `head` and `body` (streamed as it is polled)
    /// and waits for the answer's head; the answer's body follows as it comes.
    pub async fn open(
        &self,
        head: &Request,
        body: Body,
    ) -> Result<(Response, Incoming), StreamError> {
        let mut send = self.send.clone();
        send.ready().await?;
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri("http://agent/")
            .header(META_HEADER, encode_meta(head))
            .body(body)?;
        request
            .headers_mut()
            .extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let answer = send.send_request(request).await?;
        let head: Response = decode_meta(answer.headers())?;
        Ok((head, answer.into_body()))
    }

    /// Sends one bodiless `GET path` with `headers` (not the extra headers)
    /// and returns the answer's status, its body dropped: proves a new
    /// node-to-node connection before requests use it.
    pub async fn probe(
        &self,
        path: &str,
        headers: http::HeaderMap,
    ) -> Result<http::StatusCode, StreamError> {
        let mut send = self.send.clone();
        send.ready().await?;
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(format!("http://peer{path}"))
            .body(Body::empty())?;
        *request.headers_mut() = headers;
        let answer = send.send_request(request).await?;
        Ok(answer.status())
    }

    /// The same connection, sending `extra` headers on every stream.
    pub fn with_headers(mut self, extra: http::HeaderMap) -> Self {
        self.extra = extra;
        self
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }
}
