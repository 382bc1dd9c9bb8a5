//! A real `redis-server` for the cluster tests, and the nodes and queue
//! entries they use.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hooktunnel_relay::cluster::{Cluster, ClusterConfig};
use hooktunnel_relay::durable::{Enqueue, QueueLimits};
use hooktunnel_relay::protocol::next_id;

/// A `redis-server` child; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl RedisServer {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let child = spawn(dir.path(), port, extra);
            if let Some(child) = wait_ready(child, port) {
                return Self { child, port, dir };
            }
        }
        panic!("redis-server did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// kill -9, then start again on the same port and directory (the AOF).
    pub fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let child = spawn(self.dir.path(), self.port, &[]);
        self.child = wait_ready(child, self.port).expect("redis-server restarts");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .args(["--protected-mode", "no", "--maxmemory-policy", "noeviction"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server)")
}

/// The child once it answers PING, or `None` when it exited (port taken).
pub fn wait_ready(mut child: Child, port: u16) -> Option<Child> {
    use std::io::{Read as _, Write as _};
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 64];
            // A loading AOF answers -LOADING: wait for +PONG.
            if s.write_all(b"PING\r\n").is_ok()
                && s.read(&mut buf)
                    .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
            {
                return Some(child);
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    None
}

pub fn settings(redis: &RedisServer, node: &str, ttl: Duration) -> ClusterConfig {
    let mut c = ClusterConfig::new(&redis.url(), "a-cluster-secret-for-tests");
    c.node_id = node.into();
    c.lease_ttl = ttl;
    c
}

pub async fn node(redis: &RedisServer, id: &str, ttl: Duration) -> Arc<Cluster> {
    let connect = Cluster::connect(settings(redis, id, ttl), "");
    Arc::new(
        tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .unwrap()
            .unwrap(),
    )
}

pub const LIMITS: QueueLimits = QueueLimits {
    max_count: 100,
    max_bytes: 1 << 20,
    max_age: Duration::from_secs(3600),
};

pub fn entry(name: &str, frame: &[u8]) -> Enqueue {
    Enqueue {
        name: name.into(),
        id: next_id(),
        client: "192.0.2.1".into(),
        frame: Bytes::copy_from_slice(frame),
        limits: LIMITS,
        now_ms: hooktunnel_relay::protocol::now_ms(),
    }
}

/// `/_hooktunnel/health` of the relay listening on `public`, once it answers
/// (within 10 s).
pub async fn health(public: std::net::SocketAddr) -> serde_json::Value {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(mut tcp) = tokio::net::TcpStream::connect(public).await {
                tcp.write_all(b"GET /_hooktunnel/health HTTP/1.0\r\nhost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut text = String::new();
                tcp.read_to_string(&mut text).await.unwrap();
                if let Some((_, body)) = text.split_once("\r\n\r\n") {
                    return serde_json::from_str::<serde_json::Value>(body).unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap()
}
