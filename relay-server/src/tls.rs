//! TLS for the relay's own listener (`--tls-cert`, `--tls-key`): rustls with
//! the ring provider, HTTP/1.1 over ALPN so both https and wss work. With
//! `--internal-tls`, the same files also secure node-to-node HTTP/2
//! ([`internal`]): mutual TLS, each node verifying the other's certificate
//! against the certificates in `--tls-cert`'s file and `--internal-ca`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use crate::config::{InternalTls, TlsFiles};

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error(
        "cannot read the certificate chain from {path} ({reason}): --tls-cert takes a PEM file, leaf certificate first"
    )]
    Cert {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file is unreadable or holds no private key.
    #[error(
        "cannot read the private key from {path} ({reason}): --tls-key takes a PEM file with one PKCS#8, PKCS#1 or SEC1 key"
    )]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair.
    #[error("the TLS certificate and key do not work together: {0}")]
    Config(String),
    /// `--internal-ca` is unreadable or holds no certificate.
    #[error(
        "cannot read the CA certificates from {path} ({reason}): --internal-ca takes a PEM file of one or more CA certificates"
    )]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A certificate cannot be trusted as a root for peers.
    #[error("a certificate in {path} cannot be trusted for peer nodes: {reason}")]
    Anchor {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// This node's own certificate would not pass its peers' checks.
    #[error(
        "with --internal-tls, peer nodes would refuse this node's certificate ({path}): {reason}. \
         Every node presents --tls-cert to the others and verifies theirs against the certificates in that file and --internal-ca; \
         see deploy/cluster.md for making one"
    )]
    NotForPeers {
        /// The certificate file.
        path: String,
        /// Why, with the fix.
        reason: String,
    },
    /// The peers' address has no host a certificate could name.
    #[error(
        "the internal address {addr} has no host a certificate can name: with --internal-tls give --internal-advertise HOST:PORT"
    )]
    Name {
        /// The address.
        addr: String,
    },
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Cert {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A TLS acceptor for the relay's certificate and key.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let chain = certs(&files.cert)?;
    let key = key(&files.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Node-to-node TLS: the internal listener's acceptor and the connector
/// that dials peers. Both speak HTTP/2 only (ALPN `h2`), present this
/// node's certificate and require the peer's (mutual TLS).
#[derive(Clone)]
pub struct Internal {
    /// For the internal listener: refuses clients without a trusted certificate.
    pub acceptor: TlsAcceptor,
    /// For dialling peers: verifies the peer's certificate and its name.
    pub connector: TlsConnector,
}

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Internal { .. }")
    }
}

/// TLS for node-to-node traffic from `settings`; `advertised` is the
/// address peers dial to reach this node ('' when it has no listener).
///
/// Trusted roots are every certificate in the chain file (so a self-signed
/// certificate, or a leaf followed by its private CA, shared by all nodes
/// works) plus `settings.ca`. The node checks its own certificate as a peer
/// would (chain, validity, usage and, when it listens, the advertised
/// host) so a certificate peers would refuse stops it at start.
pub fn internal(settings: &InternalTls, advertised: &str) -> Result<Internal, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_path = settings.files.cert.display().to_string();
    let chain = certs(&settings.files.cert)?;
    let key = key(&settings.files.key)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in &chain {
        roots.add(cert.clone()).map_err(|e| TlsError::Anchor {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
    }
    if let Some(ca) = &settings.ca {
        let path = ca.display().to_string();
        let extra = certs(ca).map_err(|e| match e {
            TlsError::Cert { reason, .. } => TlsError::Ca {
                path: path.clone(),
                reason,
            },
            other => other,
        })?;
        for cert in extra {
            roots.add(cert).map_err(|e| TlsError::Anchor {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    let roots = Arc::new(roots);
    let config_err = |e: &dyn std::fmt::Display| TlsError::Config(e.to_string());
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| config_err(&e))?;
    let servers =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| config_err(&e))?;

    // The checks a peer makes, made here first.
    let refused = |reason: String| TlsError::NotForPeers {
        path: cert_path.clone(),
        reason,
    };
    let (leaf, intermediates) = chain.split_first().ok_or_else(|| TlsError::Cert {
        path: cert_path.clone(),
        reason: "no CERTIFICATE block".into(),
    })?;
    let now = UnixTime::now();
    clients
        .verify_client_cert(leaf, intermediates, now)
        .map_err(|e| refused(explain(&e, None)))?;
    if !advertised.is_empty() {
        let name = server_name(advertised)?;
        let host = name.to_str().into_owned();
        servers
            .verify_server_cert(leaf, intermediates, &name, &[], now)
            .map_err(|e| refused(explain(&e, Some(&host))))?;
    }

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err(&e))?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| config_err(&e))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err(&e))?
        .with_webpki_verifier(servers)
        .with_client_auth_cert(chain, key)
        .map_err(|e| config_err(&e))?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Internal {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
    })
}

/// Why a peer would refuse the certificate, with what to do about it.
fn explain(e: &rustls::Error, host: Option<&str>) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = e else {
        return e.to_string();
    };
    match (cert, host) {
        (C::NotValidForName | C::NotValidForNameContext { .. }, Some(host)) => format!(
            "it does not name {host}, the host peers dial (--internal-advertise, else --internal-listen); \
             add {host} to its subjectAltName (an IP address entry for an IP)"
        ),
        (C::Expired | C::ExpiredContext { .. }, _) => {
            "it has expired; renew it and give every node the new files".into()
        }
        (C::NotValidYet | C::NotValidYetContext { .. }, _) => {
            "it is not valid yet (is this host's clock right?)".into()
        }
        (C::UnknownIssuer, _) => "its issuer is in neither the --tls-cert file nor --internal-ca; \
             append the CA certificate to the --tls-cert file (after the leaf) or pass it with --internal-ca"
            .into(),
        (C::InvalidPurpose | C::InvalidPurposeContext { .. }, _) => {
            "its extendedKeyUsage does not allow both serverAuth and clientAuth \
             (nodes are TLS servers and clients to each other); reissue it with both, or with no extendedKeyUsage"
                .into()
        }
        // webpki's CaUsedAsEndEntity arrives wrapped in `Other`; webpki is
        // not a direct dependency, so it is recognised by name.
        (C::Other(other), _) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "it is a CA certificate (basicConstraints CA:TRUE, what `openssl req -x509` makes by default), \
             which cannot be a node's own; reissue it with -addext basicConstraints=critical,CA:FALSE"
                .into()
        }
        _ => e.to_string(),
    }
}

/// The name a peer's certificate must carry: the host of its advertised
/// `HOST:PORT` (an IP address or a DNS name; IPv6 in brackets).
pub fn server_name(addr: &str) -> Result<ServerName<'static>, TlsError> {
    let unusable = || TlsError::Name {
        addr: addr.to_owned(),
    };
    if let Ok(socket) = addr.parse::<std::net::SocketAddr>() {
        if socket.ip().is_unspecified() {
            return Err(unusable());
        }
        return Ok(ServerName::IpAddress(socket.ip().into()));
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(unusable());
    }
    ServerName::try_from(host.to_owned()).map_err(|_| unusable())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn peer_names_come_from_the_advertised_host() {
        let ip = |s: &str| match server_name(s).unwrap() {
            ServerName::IpAddress(ip) => std::net::IpAddr::from(ip).to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(ip("10.0.0.11:7443"), "10.0.0.11");
        assert_eq!(ip("[fd00::11]:7443"), "fd00::11");
        assert_eq!(
            server_name("relay-1.internal:7443").unwrap().to_str(),
            "relay-1.internal"
        );
        for bad in ["0.0.0.0:7443", "[::]:7443", ":7443", "bad_name!:1"] {
            assert!(
                matches!(server_name(bad), Err(TlsError::Name { .. })),
                "{bad}"
            );
        }
    }
}
