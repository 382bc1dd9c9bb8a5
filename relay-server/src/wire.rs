//! The socket-writer loop the relay and the agent share: frames from a
//! channel go out in bursts, one flush per burst, with pings in between.

use std::time::Duration;

use futures_util::{Sink, SinkExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Most frames written with one flush; tungstenite also writes out on its own
/// once its write buffer passes 128 KiB.
pub const MAX_BURST: usize = 64;

/// Writes everything `outbound` yields to `sink` until the channel closes
/// (`Ok`) or the sink fails (`Err`), pinging every `ping_interval` of quiet.
///
/// Whatever is already queued when a frame is sent goes out with the same
/// flush (up to [`MAX_BURST`] frames): one socket write for a burst instead of
/// one per frame. The sink is not closed; callers that want a close frame
/// send it after.
///
/// ```no_run
/// # async fn demo(socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) {
/// use futures_util::StreamExt as _;
/// let (mut sink, _stream) = socket.split();
/// let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1024);
/// # drop(tx);
/// let ended = hooktunnel_relay::wire::write_batched(
///     &mut sink,
///     &mut rx,
///     hooktunnel_relay::protocol::PING_INTERVAL,
/// )
/// .await;
/// # let _ = ended;
/// # }
/// ```
pub async fn write_batched<S, T>(
    sink: &mut S,
    outbound: &mut mpsc::Receiver<T>,
    ping_interval: Duration,
) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
    T: Into<Message>,
{
    let mut ping = tokio::time::interval(ping_interval);
    ping.tick().await;
    loop {
        let first = tokio::select! {
            frame = outbound.recv() => match frame {
                Some(frame) => frame.into(),
                None => return Ok(()),
            },
            _ = ping.tick() => Message::Ping(bytes::Bytes::new()),
        };
        sink.feed(first).await?;
        for _ in 1..MAX_BURST {
            let Ok(frame) = outbound.try_recv() else {
                break;
            };
            sink.feed(frame.into()).await?;
        }
        sink.flush().await?;
    }
}

/// Bytes buffered between a session's HTTP/2 connection and its socket, each way.
pub const PIPE_BUFFER: usize = 256 * 1024;

/// The two ends of a session's stream pipe: give the first to hyper's HTTP/2
/// connection, pump the second with [`pump_out`] and [`pump_in`].
pub fn stream_pipe() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    tokio::io::duplex(PIPE_BUFFER)
}

/// Moves what the HTTP/2 connection writes into stream messages on
/// `outbound` (the socket writer's channel), until the connection closes its
/// end (`Ok`) or the channel closes.
pub async fn pump_out<R, T>(mut from: R, outbound: &mpsc::Sender<T>) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    T: From<bytes::Bytes>,
{
    use crate::protocol::stream::{MAX_STREAM_CHUNK, STREAM_MARKER};
    use bytes::BufMut as _;
    use tokio::io::AsyncReadExt as _;
    // Idle sessions wait with a small buffer; a read that fills it means a
    // transfer is on, and the next reads take whole chunks.
    const IDLE_CHUNK: usize = 4 * 1024;
    let mut chunk = IDLE_CHUNK;
    loop {
        // Read straight behind the marker byte: the message is built in place.
        let mut message = bytes::BytesMut::with_capacity(1 + chunk);
        message.put_u8(STREAM_MARKER);
        let n = from.read_buf(&mut (&mut message).limit(chunk)).await?;
        if n == 0 {
            return Ok(());
        }
        chunk = if n == chunk {
            MAX_STREAM_CHUNK
        } else {
            IDLE_CHUNK
        };
        if outbound.send(T::from(message.freeze())).await.is_err() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
    }
}

/// Hands one stream message's bytes to the HTTP/2 connection.
pub async fn pump_in<W>(to: &mut W, h2: &[u8]) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt as _;
    to.write_all(h2).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A sink recording what was fed and how many frames each flush carried.
    #[derive(Default)]
    struct Recorder {
        fed: Vec<Message>,
        flushes: Vec<usize>,
        unflushed: usize,
    }

    impl Sink<Message> for Recorder {
        type Error = std::convert::Infallible;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            let this = self.get_mut();
            this.fed.push(item);
            this.unflushed += 1;
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            let this = self.get_mut();
            if this.unflushed > 0 {
                this.flushes.push(std::mem::take(&mut this.unflushed));
            }
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.poll_flush(cx)
        }
    }

    #[tokio::test]
    async fn a_queued_burst_goes_out_with_one_flush_per_max_burst() {
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        for i in 0..(MAX_BURST + 6) {
            tx.send(Bytes::from(vec![i as u8])).await.unwrap();
        }
        drop(tx);
        let mut sink = Recorder::default();
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            write_batched(&mut sink, &mut rx, Duration::from_secs(3600)),
        )
        .await
        .unwrap();
        assert!(ended.is_ok(), "a closed channel ends the loop cleanly");
        assert_eq!(sink.fed.len(), MAX_BURST + 6);
        assert_eq!(sink.fed[0], Message::Binary(Bytes::from(vec![0])));
        assert_eq!(sink.flushes, vec![MAX_BURST, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_links_are_pinged() {
        let (tx, mut rx) = mpsc::channel::<Message>(4);
        let mut sink = Recorder::default();
        let writing = write_batched(&mut sink, &mut rx, Duration::from_secs(15));
        // Paused time: two intervals pass instantly, then the channel closes.
        let closing = async {
            tokio::time::sleep(Duration::from_secs(31)).await;
            drop(tx);
        };
        let (ended, ()) = tokio::join!(writing, closing);
        assert!(ended.is_ok());
        assert_eq!(sink.fed, vec![Message::Ping(Bytes::new()); 2]);
        assert_eq!(sink.flushes, vec![1, 1]);
    }
}
