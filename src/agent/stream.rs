//! The agent's end of protocol v2: each HTTP/2 stream the relay opens is one
//! live request. Its body goes to the local app as it arrives and the app's
//! answer goes back as the app writes it; both are teed into a bounded
//! capture ([`crate::capture`]) and the exchange is recorded when the answer
//! has been sent in full. An `Upgrade` the app accepts (`101`) turns the
//! stream into a two-way byte pipe between the sender and the app.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};

use hooktunnel_protocol::stream::{META_HEADER, decode_meta, encode_meta, upgrade_requested};
use hooktunnel_protocol::{self as protocol, HttpErrorCode};

use super::Pipeline;
use crate::capture::{Capture, Truncation};
use crate::event::AgentEvent;
use crate::exchange::ExchangeResponse;
use crate::forward::{BoxError, Forwarded, headers_of, own_answer, whole_body};

/// Bytes read from an upgraded local connection at once.
const UPGRADE_CHUNK: usize = 16 * 1024;
/// Longest an injected drop holds a stream unanswered (the relay's
/// response timeout usually ends it first).
const DROP_HOLD: std::time::Duration = std::time::Duration::from_secs(300);
/// How long the app may go on talking after the sender stopped sending.
const UPGRADE_LINGER: std::time::Duration = std::time::Duration::from_secs(10);

/// What a teed body left behind: the captured bytes, what was dropped past
/// the capture limit, and why it ended early (if it did).
#[derive(Debug, Default)]
pub struct Teed {
    /// The kept bytes (at most the capture limit).
    pub bytes: Bytes,
    /// Set when the body was longer than the limit.
    pub truncated: Option<Truncation>,
    /// Set when the body failed or was abandoned before its end.
    pub error: Option<String>,
}

/// A body passed on unchanged while a bounded copy is kept; the copy is
/// sent to `done` when the body ends, fails or is dropped.
pub struct Tee {
    inner: Option<Incoming>,
    capture: Option<Capture>,
    done: Option<oneshot::Sender<Teed>>,
    what: &'static str,
    drain: bool,
}

/// Longest a dropped request body is still read for the record.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Tee {
    /// Tees `inner`, keeping up to `limit` bytes; `what` names the body in errors.
    pub fn new(
        inner: Incoming,
        limit: usize,
        what: &'static str,
    ) -> (Self, oneshot::Receiver<Teed>) {
        let (tx, rx) = oneshot::channel();
        let tee = Self {
            inner: Some(inner),
            capture: Some(Capture::new(limit)),
            done: Some(tx),
            what,
            drain: false,
        };
        (tee, rx)
    }

    /// Tees a request body: if the app never reads it (unreachable, or it
    /// answered early), the rest is still read into the record when the
    /// tee is dropped, so a failed delivery keeps what was sent.
    pub fn request(inner: Incoming, limit: usize) -> (Self, oneshot::Receiver<Teed>) {
        let (mut tee, rx) = Self::new(inner, limit, "request body");
        tee.drain = true;
        (tee, rx)
    }

    fn finish(&mut self, error: Option<String>) {
        if let (Some(capture), Some(done)) = (self.capture.take(), self.done.take()) {
            let (bytes, truncated) = capture.finish();
            let _ = done.send(Teed {
                bytes,
                truncated,
                error,
            });
        }
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(capture)) = (frame.data_ref(), self.capture.as_mut()) {
                    capture.push(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let what = self.what;
                self.finish(Some(format!("the {what} failed: {e}")));
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        let (Some(mut capture), Some(done)) = (self.capture.take(), self.done.take()) else {
            return;
        };
        let what = self.what;
        let abandoned = move |capture: Capture, error: Option<String>| {
            let (bytes, truncated) = capture.finish();
            let _ = done.send(Teed {
                bytes,
                truncated,
                error,
            });
        };
        let inner = self.inner.take();
        // hyper stops polling a body that says it is complete.
        let complete = inner.as_ref().is_none_or(Body::is_end_stream);
        if complete {
            return abandoned(capture, None);
        }
        let stopped = Some(format!("the {what} stopped before its end"));
        match (self.drain, inner, tokio::runtime::Handle::try_current()) {
            (true, Some(inner), Ok(runtime)) => {
                runtime.spawn(async move {
                    let mut inner = inner;
                    let drained = tokio::time::timeout(DRAIN_LIMIT, async {
                        while let Some(frame) = inner.frame().await {
                            match frame {
                                Ok(frame) => {
                                    if let Some(data) = frame.data_ref() {
                                        capture.push(data);
                                    }
                                }
                                Err(_) => return false,
                            }
                        }
                        true
                    })
                    .await;
                    let error = (drained != Ok(true)).then(|| format!("the {what} was cut"));
                    abandoned(capture, error);
                });
            }
            _ => abandoned(capture, stopped),
        }
    }
}
/// The body of an answer sent back on a stream.
pub type AnswerBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The stream's answer: `head` in the meta header, `body` streamed.
fn answer(head: &protocol::Response, body: AnswerBody) -> http::Response<AnswerBody> {
    let mut response = http::Response::new(body);
    response
        .headers_mut()
        .insert(META_HEADER, encode_meta(head));
    response
}

/// hooktunnel's own answer on a stream (the app could not be asked).
fn own(id: ulid::Ulid, own: &ExchangeResponse) -> http::Response<AnswerBody> {
    let head = protocol::Response {
        id,
        status: own.status,
        headers: own.headers.clone(),
        body: Bytes::new(),
    };
    answer(&head, whole_body(own.body.clone()))
}

/// Serves one stream from the relay (the HTTP/2 service). The work runs on
/// its own task, tracked by the pipeline, so a stopping agent can let it
/// finish and record even if the link drops meanwhile.
pub async fn serve(
    tunnels: super::Tunnels,
    request: http::Request<Incoming>,
) -> Result<http::Response<AnswerBody>, Infallible> {
    let head: protocol::Request = match decode_meta(request.headers()) {
        Ok(head) => head,
        Err(e) => {
            let message = format!("the relay sent a stream without a usable head: {e}");
            tracing::warn!(%message);
            let response = own_answer(502, HttpErrorCode::ProtocolError, &message);
            return Ok(own(ulid::Ulid::nil(), &response));
        }
    };
    let Some(pipeline) = tunnels.get(head.tunnel.as_deref()).cloned() else {
        let message = format!(
            "the relay sent a request for tunnel '{}', which this agent does not serve",
            head.tunnel.as_deref().unwrap_or_default()
        );
        tracing::warn!(%message);
        let response = own_answer(502, HttpErrorCode::ProtocolError, &message);
        return Ok(own(head.id, &response));
    };
    let (tx, rx) = oneshot::channel();
    let body = request.into_body();
    let work = pipeline.clone();
    pipeline
        .live
        .spawn(async move { work.handle_stream(head, body, tx).await });
    Ok(rx.await.unwrap_or_else(|_| {
        let response = own_answer(
            502,
            HttpErrorCode::LocalUnreachable,
            "the agent dropped the request",
        );
        own(ulid::Ulid::nil(), &response)
    }))
}

impl Pipeline {
    /// Forwards one streamed request, answers on `reply`, then records.
    async fn handle_stream(
        &self,
        head: protocol::Request,
        body: Incoming,
        reply: oneshot::Sender<http::Response<AnswerBody>>,
    ) {
        let started = Instant::now();
        if let Err(violation) = protocol::check_request_head(&head) {
            let message = format!("the relay sent an invalid request: {violation}");
            let response = own_answer(502, HttpErrorCode::ProtocolError, &message);
            let _ = reply.send(own(head.id, &response));
            let forwarded = Forwarded {
                response,
                error: Some(message),
                duration_us: 0,
            };
            return self
                .record_live(head, Teed::default(), forwarded, None)
                .await;
        }
        // Traffic rules (issue 17): route, header edits, delay, fault, mock.
        let plan = self.rules.plan(&self.forwarder, &head);
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        if let Some(own_answer) = plan.own {
            return self
                .answer_own(head, body, own_answer, reply, started)
                .await;
        }
        if upgrade_requested(&head.headers).is_some() {
            return self.handle_upgrade(head, body, reply, started, &plan).await;
        }
        let (request_body, request_done) = Tee::request(body, self.capture_max);
        let opened = self
            .open_app(&plan, &head, request_body.boxed_unsync(), false)
            .await;
        self.answer_opened(head, opened, request_done, reply, started, &plan)
            .await;
    }

    /// A fault or mock answers instead of the app; the request body is
    /// still read into the record. An injected drop answers nothing: the
    /// stream is held until the relay gives up on it.
    async fn answer_own(
        &self,
        head: protocol::Request,
        body: Incoming,
        own_answer: crate::rules::apply::OwnAnswer,
        reply: oneshot::Sender<http::Response<AnswerBody>>,
        started: Instant,
    ) {
        let (request_body, request_done) = Tee::request(body, self.capture_max);
        drop(request_body);
        if own_answer.dropped {
            let mut reply = reply;
            let _ = tokio::time::timeout(DROP_HOLD, reply.closed()).await;
        } else {
            let _ = reply.send(own(head.id, &own_answer.response));
        }
        let forwarded = Forwarded {
            response: own_answer.response,
            error: own_answer.error,
            duration_us: crate::forward::elapsed_us(started),
        };
        let request = request_done.await.unwrap_or_default();
        self.record_live(head, request, forwarded, None).await;
    }

    /// Sends `head` with `body` to the local app the plan routes it to,
    /// with the plan's header edits; see [`crate::forward::Forwarder::open`].
    async fn open_app(
        &self,
        plan: &crate::rules::apply::Plan<'_>,
        head: &protocol::Request,
        body: crate::forward::OutBody,
        upgrade: bool,
    ) -> Result<http::Response<Incoming>, crate::forward::Failure> {
        let headers = plan.headers.as_deref().unwrap_or(&head.headers);
        plan.forwarder
            .open(&head.method, &head.target, headers, body, upgrade)
            .await
    }

    /// Streams the app's answer back (or hooktunnel's own), waits for both
    /// bodies to end, and records.
    async fn answer_opened(
        &self,
        head: protocol::Request,
        opened: Result<http::Response<Incoming>, crate::forward::Failure>,
        request_done: oneshot::Receiver<Teed>,
        reply: oneshot::Sender<http::Response<AnswerBody>>,
        started: Instant,
        plan: &crate::rules::apply::Plan<'_>,
    ) {
        let response = match opened {
            Ok(response) if response.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
                Err(unexpected_upgrade())
            }
            Ok(response) => Ok(response),
            Err(failure) => Err(failure),
        };
        let (app, teed) = match response {
            Err(failure) => {
                let mut forwarded = Forwarded {
                    response: failure.response,
                    error: Some(failure.error),
                    duration_us: crate::forward::elapsed_us(started),
                };
                // A `when-app-down` mock and response edits (issue 17).
                self.rules.after(plan, &head.target, &mut forwarded);
                let _ = reply.send(own(head.id, &forwarded.response));
                let request = request_done.await.unwrap_or_default();
                return self.record_live(head, request, forwarded, None).await;
            }
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let mut app = protocol::Response {
                    id: head.id,
                    status: parts.status.as_u16(),
                    headers: headers_of(&parts.headers),
                    body: Bytes::new(),
                };
                self.rules.edit_response(&head.target, &mut app.headers);
                let (body, done) = Tee::new(body, self.capture_max, "local app's answer");
                let _ = reply.send(answer(&app, body.boxed_unsync()));
                (app, done)
            }
        };
        // The answer's body streams to the relay; it ends when the app ends
        // it or the relay stops reading.
        let response_teed = teed.await.unwrap_or_default();
        let request = request_done.await.unwrap_or_default();
        let error = response_teed.error.clone().map(|e| {
            format!("{e} (the sender went away, the link dropped, or the app cut the answer)")
        });
        let forwarded = Forwarded {
            response: ExchangeResponse {
                status: app.status,
                headers: app.headers,
                body: response_teed.bytes,
                // Set from `response_teed.truncated` by `exchange_streamed`.
                truncated: None,
            },
            error: error.or_else(|| request.error.clone()),
            duration_us: crate::forward::elapsed_us(started),
        };
        self.record_live(head, request, forwarded, response_teed.truncated)
            .await;
    }

    /// An `Upgrade` request: the app may switch protocols (`101`), after
    /// which bytes flow both ways until either side closes; the exchange
    /// records both directions' bytes (up to the capture limit).
    async fn handle_upgrade(
        &self,
        head: protocol::Request,
        mut from_sender: Incoming,
        reply: oneshot::Sender<http::Response<AnswerBody>>,
        started: Instant,
        plan: &crate::rules::apply::Plan<'_>,
    ) {
        let opened = self
            .open_app(plan, &head, whole_body(Bytes::new()), true)
            .await;
        let mut response = match opened {
            Ok(response) if response.status() == http::StatusCode::SWITCHING_PROTOCOLS => response,
            other => {
                // Refused (or failed): an ordinary answer; no body came from the sender.
                let (_, done) = oneshot::channel();
                return self
                    .answer_opened(head, other, done, reply, started, plan)
                    .await;
            }
        };
        let on_upgrade = hyper::upgrade::on(&mut response);
        let app = protocol::Response {
            id: head.id,
            status: 101,
            headers: headers_of(response.headers()),
            body: Bytes::new(),
        };
        let (to_sender, rx) = mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, BoxError>(Frame::data(chunk)), rx))
        });
        let _ = reply.send(answer(
            &app,
            http_body_util::StreamBody::new(stream).boxed_unsync(),
        ));
        let mut sent = Capture::new(self.capture_max);
        let mut received = Capture::new(self.capture_max);
        let mut error = None;
        match on_upgrade.await {
            Err(e) => error = Some(format!("the local app's connection did not switch: {e}")),
            Ok(upgraded) => {
                let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
                let up = async {
                    while let Some(frame) = from_sender.frame().await {
                        let Ok(frame) = frame else { break };
                        if let Ok(data) = frame.into_data() {
                            sent.push(&data);
                            if write.write_all(&data).await.is_err() {
                                break;
                            }
                        }
                    }
                    let _ = write.shutdown().await;
                };
                let down = async {
                    let to_sender = to_sender;
                    let mut buf = vec![0_u8; UPGRADE_CHUNK];
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                received.push(&buf[..n]);
                                if to_sender
                                    .send(Bytes::copy_from_slice(&buf[..n]))
                                    .await
                                    .is_err()
                                {
                                    break;
                                }
                            }
                        }
                    }
                };
                tokio::pin!(up, down);
                tokio::select! {
                    // The sender finished sending: the app may still answer.
                    () = &mut up => {
                        let _ = tokio::time::timeout(UPGRADE_LINGER, down).await;
                    }
                    // The app closed: nothing more can reach it.
                    () = &mut down => {}
                }
            }
        }
        let (sent, sent_cut) = sent.finish();
        let (received, received_cut) = received.finish();
        let request = Teed {
            bytes: sent,
            truncated: sent_cut,
            error: None,
        };
        let forwarded = Forwarded {
            response: ExchangeResponse {
                status: 101,
                headers: app.headers,
                body: received,
                // Set from `received_cut` by `exchange_streamed`.
                truncated: None,
            },
            error,
            duration_us: crate::forward::elapsed_us(started),
        };
        self.record_live(head, request, forwarded, received_cut)
            .await;
    }

    /// Records a live exchange and tells the printer or TUI.
    async fn record_live(
        &self,
        mut head: protocol::Request,
        request: Teed,
        forwarded: Forwarded,
        response_truncated: Option<Truncation>,
    ) {
        head.body = request.bytes;
        let exchange =
            self.exchange_streamed(head, forwarded, request.truncated, response_truncated);
        let summary = exchange.summary();
        // Never waits: a store that is behind gets the exchange without its
        // bodies (or, stalled, not at all), and a notice says so.
        let recorded = self.store.record(exchange);
        self.events.send(AgentEvent::Exchange(summary));
        if let Some(notice) = self.store.behind_notice(recorded) {
            self.events.send(AgentEvent::Notice(notice));
        }
    }
}

/// The answer to an app that switched protocols unasked.
fn unexpected_upgrade() -> crate::forward::Failure {
    let error =
        "the local app answered 101 Switching Protocols to a request that asked for no upgrade"
            .to_owned();
    crate::forward::Failure {
        response: own_answer(502, HttpErrorCode::UnexpectedUpgrade, &error),
        error,
    }
}
