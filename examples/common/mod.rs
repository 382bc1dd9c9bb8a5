//! What the benchmark examples share: loopback ports, child processes and a
//! bare agent handshake. Each example includes it with `#[path]`, so an
//! example may leave some of it unused.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use hooktunnel_protocol::{AgentMessage, PROTOCOL_VERSION, RelayMessage};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// An agent WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 10 s) until something listens on loopback `port`.
pub async fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("nothing listens on {port}")
}

/// Starts `cmd` as a child killed when dropped.
pub fn spawn(cmd: &mut Command) -> anyhow::Result<Child> {
    cmd.kill_on_drop(true)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start a child")
}

/// An agent socket on `url` that has said `hello` (with `fields` added,
/// e.g. name and key) and got its `welcome`. Built from JSON so hello fields
/// added later (all defaulted) need no change here.
pub async fn handshake(url: &str, fields: serde_json::Value) -> anyhow::Result<Socket> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let mut hello = serde_json::json!({ "type": "hello", "version": PROTOCOL_VERSION });
    if let (Some(hello), Some(fields)) = (hello.as_object_mut(), fields.as_object()) {
        hello.extend(fields.clone());
    }
    let hello: AgentMessage = serde_json::from_value(hello)?;
    socket.send(Message::Binary(hello.encode())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(frame))) => match RelayMessage::decode(&frame)? {
                RelayMessage::Welcome(_) => return Ok(socket),
                other => bail!("expected welcome, got {other:?}"),
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("relay closed the socket during the handshake"),
        }
    }
}
