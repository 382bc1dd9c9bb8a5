//! Node-to-node TLS (`--internal-tls`): the internal listener admits only
//! TLS clients with a certificate the node trusts, and a node refuses to
//! start with a certificate its peers would refuse.

use std::sync::Arc;
use std::time::Duration;

use hooktunnel_relay::config::{InternalTls, TlsFiles};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::redis::*;

/// A certificate and its key, also written as PEM files.
pub struct NodeCert {
    pub cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    pub tls: InternalTls,
    _dir: tempfile::TempDir,
}

impl NodeCert {
    /// A self-signed certificate (not a CA) naming `names`.
    pub fn self_signed(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        Self::from_params(params)
    }

    fn from_params(params: rcgen::CertificateParams) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("node.pem"), dir.path().join("node.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Self {
            cert: cert.der().clone(),
            key_der: key.serialize_der(),
            tls: InternalTls {
                files: TlsFiles {
                    cert: cert_path,
                    key: key_path,
                },
                ca: None,
            },
            _dir: dir,
        }
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::try_from(self.key_der.clone()).unwrap()
    }
}

/// A rustls client trusting `server`, presenting `client` when given.
fn client_config(server: &NodeCert, client: Option<&NodeCert>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert.clone()], c.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// One request on a new HTTP/2 connection over `io`: its status, or why
/// there was none.
async fn h2_status<IO>(io: IO, path: &str, auth: &str) -> Result<u16, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let attempt = async {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = http::Request::get(format!("http://peer{path}"))
            .header("authorization", auth)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let answer = send
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(answer.status().as_u16())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

/// A node in process with `tls` on its internal listener: its internal
/// address (from its health report), the report, and how to stop it.
async fn tls_node(
    redis: &RedisServer,
    tls: &InternalTls,
) -> (
    String,
    serde_json::Value,
    tokio_util::sync::CancellationToken,
) {
    let mut cluster = settings(redis, "a", Duration::from_secs(10));
    cluster.internal_listen = Some("127.0.0.1:0".parse().unwrap());
    cluster.internal_tls = Some(tls.clone());
    let config = hooktunnel_relay::RelayConfig {
        cluster: Some(cluster),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(hooktunnel_relay::serve(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));
    let health = health(public).await;
    let internal = health["cluster"]["internal"].as_str().unwrap().to_owned();
    (internal, health, stop)
}

const SECRET: &str = "Bearer a-cluster-secret-for-tests";
const PROBE: &str = hooktunnel_relay::cluster::routing::PROBE_PATH;

/// With `--internal-tls` the internal listener answers only TLS clients
/// presenting a certificate the node trusts: clear-text HTTP/2, TLS without
/// a client certificate and TLS with a stranger's certificate get no
/// answer; a node's own certificate gets the usual secret check.
#[tokio::test]
async fn the_tls_internal_listener_admits_only_trusted_nodes() {
    let redis = RedisServer::start(&[]);
    let node_cert = NodeCert::self_signed(&["127.0.0.1"]);
    let stranger = NodeCert::self_signed(&["127.0.0.1"]);
    let (internal, health, stop) = tls_node(&redis, &node_cert.tls).await;
    assert_eq!(health["cluster"]["internal_tls"], true, "{health}");
    let tcp = || tokio::net::TcpStream::connect(internal.clone());
    let tls = |config| async {
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        connector.connect(name, tcp().await.unwrap()).await
    };

    let clear = h2_status(tcp().await.unwrap(), PROBE, SECRET).await;
    assert!(clear.is_err(), "clear text got an answer: {clear:?}");

    for (who, client) in [
        ("no client certificate", None),
        ("a stranger's certificate", Some(&stranger)),
    ] {
        // TLS 1.3: the client may finish its side before the node refuses.
        let answer = match tls(client_config(&node_cert, client)).await {
            Ok(stream) => h2_status(stream, PROBE, SECRET).await,
            Err(e) => Err(e.to_string()),
        };
        assert!(answer.is_err(), "{who} got an answer: {answer:?}");
    }

    let trusted = || tls(client_config(&node_cert, Some(&node_cert)));
    let probe = h2_status(trusted().await.unwrap(), PROBE, SECRET).await;
    assert_eq!(probe, Ok(204));
    let no_secret = h2_status(trusted().await.unwrap(), PROBE, "Bearer agent-token").await;
    assert_eq!(
        no_secret,
        Ok(401),
        "TLS does not replace the cluster secret"
    );
    stop.cancel();
}

/// A certificate peers would refuse stops the node at start, before Redis,
/// with what to fix.
#[tokio::test]
async fn a_certificate_peers_would_refuse_stops_the_node() {
    let connect = |tls: &InternalTls, advertised: &'static str| {
        let mut c = hooktunnel_relay::cluster::ClusterConfig::new(
            // Never reached: the files are checked first.
            "redis://127.0.0.1:1/0",
            "a-cluster-secret-for-tests",
        );
        c.internal_tls = Some(tls.clone());
        async move {
            hooktunnel_relay::cluster::Cluster::connect(c, advertised)
                .await
                .err()
                .expect("refused")
                .to_string()
        }
    };
    let cert = NodeCert::self_signed(&["127.0.0.1", "relay-1.internal"]);
    let wrong_host = connect(&cert.tls, "10.0.0.12:7443").await;
    assert!(
        wrong_host.contains("does not name 10.0.0.12")
            && wrong_host.contains("--internal-advertise"),
        "{wrong_host}"
    );
    let unspecified = connect(&cert.tls, "0.0.0.0:7443").await;
    assert!(
        unspecified.contains("--internal-advertise HOST:PORT"),
        "{unspecified}"
    );

    let mut ca = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = NodeCert::from_params(ca);
    let as_leaf = connect(&ca.tls, "127.0.0.1:7443").await;
    assert!(as_leaf.contains("CA:FALSE"), "{as_leaf}");

    let mut server_only = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server_only.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = NodeCert::from_params(server_only);
    let usage = connect(&server_only.tls, "127.0.0.1:7443").await;
    assert!(usage.contains("clientAuth"), "{usage}");

    let mut missing_ca = cert.tls.clone();
    missing_ca.ca = Some("/nonexistent/ca.pem".into());
    let unreadable = connect(&missing_ca, "127.0.0.1:7443").await;
    assert!(
        unreadable.contains("/nonexistent/ca.pem") && unreadable.contains("--internal-ca"),
        "{unreadable}"
    );
}
