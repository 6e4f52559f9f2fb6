//! TLS for every listener and client of MPC-System, configured once here so no service copies it.
//!
//! Configuration (environment variables, each a path to a PEM file):
//! - `MPC_TLS_CERT`, `MPC_TLS_KEY`: the service's certificate chain and key. With both set, every
//!   HTTP and gRPC listener of the service serves TLS only.
//! - `MPC_TLS_CA`: the CA that clients verify servers against. Required to call an `https://`
//!   endpoint; no system roots are used, a private CA is the norm inside a deployment.
//! - `MPC_TLS_CLIENT_CERT`, `MPC_TLS_CLIENT_KEY`: the certificate a client presents. When unset,
//!   the service's own `MPC_TLS_CERT`/`MPC_TLS_KEY` is presented (one certificate per service,
//!   valid for both server and client authentication).
//! - `MPC_TLS_CLIENT_CA`: the CA client certificates must chain to. With it set, gRPC listeners
//!   (coordinator, router) require a client certificate (mutual TLS); HTTP listeners ask for one
//!   and verify it if presented but do not require it, because they carry the public API (API
//!   keys) and the ops routes that probes and Prometheus call.
//!
//! Identity: a certificate names its holder with a URI subject alternative name,
//! `urn:mpc:party:<party_id>` for a server party and `urn:mpc:service:<name>` for a service
//! (see [`PeerIdentity`]). The coordinator and router refuse a join token for party A presented
//! over a connection whose certificate names party B.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mpc_proto::{ApiError, ErrorCode};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use zeroize::Zeroizing;

/// URI SAN prefix naming a server party (`urn:mpc:party:server_party_1`).
pub const PARTY_URI_PREFIX: &str = "urn:mpc:party:";
/// URI SAN prefix naming a service (`urn:mpc:service:party-api`).
pub const SERVICE_URI_PREFIX: &str = "urn:mpc:service:";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{var}: cannot read {path}: {source}")]
    Read {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is set without {1}: set both or neither")]
    Unpaired(&'static str, &'static str),
    #[error("{0}: no PEM certificate found")]
    NoCertificate(&'static str),
    #[error("{0}: no PEM private key found")]
    NoKey(&'static str),
    #[error(
        "endpoint {0} is https:// but MPC_TLS_CA is not set: set it to the CA that signed the server's certificate"
    )]
    NoCa(String),
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client CA: {0}")]
    ClientVerifier(String),
    #[error("gRPC TLS: {0}")]
    Tonic(#[from] tonic::transport::Error),
    #[error("certificate generation: {0}")]
    Generate(String),
}

impl From<TlsError> for std::io::Error {
    fn from(e: TlsError) -> Self {
        std::io::Error::other(e)
    }
}

/// A PEM private key, wiped from memory when dropped and never printed.
#[derive(Clone)]
pub struct KeyPem(Arc<Zeroizing<Vec<u8>>>);

impl KeyPem {
    pub fn new(pem: Vec<u8>) -> Self {
        Self(Arc::new(Zeroizing::new(pem)))
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPem(…)")
    }
}

/// A certificate (chain) and its private key, PEM.
#[derive(Clone, Debug)]
pub struct CertKey {
    pub cert: Arc<Vec<u8>>,
    pub key: KeyPem,
}

impl CertKey {
    pub fn new(cert: Vec<u8>, key: Vec<u8>) -> Self {
        Self {
            cert: Arc::new(cert),
            key: KeyPem::new(key),
        }
    }

    fn parse(
        &self,
        what: &'static str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let certs = certs(&self.cert, what)?;
        let key = PrivateKeyDer::from_pem_reader(Cursor::new(self.key.bytes()))
            .map_err(|_| TlsError::NoKey(what))?;
        Ok((certs, key))
    }
}

/// The TLS settings of one service (both its listeners and its clients). The default is plain
/// TCP everywhere.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    /// What the listeners present; `None`: listeners are plaintext.
    pub server: Option<CertKey>,
    /// The CA clients verify servers against (PEM).
    pub ca: Option<Arc<Vec<u8>>>,
    /// The CA client certificates must chain to (PEM); enables mutual TLS.
    pub client_ca: Option<Arc<Vec<u8>>>,
    /// What clients present; `None`: the server certificate is presented, if any.
    pub client: Option<CertKey>,
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_reader_iter(Cursor::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate(what))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what));
    }
    Ok(certs)
}

fn roots(pem: &[u8], what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(pem, what)? {
        store.add(cert)?;
    }
    Ok(store)
}

fn read(var: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        var,
        path: PathBuf::from(path),
        source,
    })
}

const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl TlsConfig {
    /// Reads `MPC_TLS_*` (see the module documentation) through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, TlsError> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let pair =
            |cert_var: &'static str, key_var: &'static str| -> Result<Option<CertKey>, TlsError> {
                match (get(cert_var), get(key_var)) {
                    (None, None) => Ok(None),
                    (Some(_), None) => Err(TlsError::Unpaired(cert_var, key_var)),
                    (None, Some(_)) => Err(TlsError::Unpaired(key_var, cert_var)),
                    (Some(c), Some(k)) => {
                        let pair = CertKey::new(read(cert_var, &c)?, read(key_var, &k)?);
                        pair.parse(cert_var)?;
                        Ok(Some(pair))
                    }
                }
            };
        let config = Self {
            server: pair("MPC_TLS_CERT", "MPC_TLS_KEY")?,
            client: pair("MPC_TLS_CLIENT_CERT", "MPC_TLS_CLIENT_KEY")?,
            ca: get("MPC_TLS_CA")
                .map(|p| read("MPC_TLS_CA", &p).map(Arc::new))
                .transpose()?,
            client_ca: get("MPC_TLS_CLIENT_CA")
                .map(|p| read("MPC_TLS_CLIENT_CA", &p).map(Arc::new))
                .transpose()?,
        };
        // Fail at start, not at the first connection.
        config.http_server()?;
        config.grpc_server()?;
        config.rustls_client()?;
        Ok(config)
    }

    /// The files `mpc up --tls` or a test wrote: `ca` verifies servers and clients, `own` is the
    /// service's certificate for both roles, and mutual TLS is required when `mutual`.
    pub fn from_files(
        ca: &Path,
        own: &Path,
        own_key: &Path,
        mutual: bool,
    ) -> Result<Self, TlsError> {
        let read_path = |var: &'static str, p: &Path| -> Result<Vec<u8>, TlsError> {
            std::fs::read(p).map_err(|source| TlsError::Read {
                var,
                path: p.to_owned(),
                source,
            })
        };
        let ca = Arc::new(read_path("MPC_TLS_CA", ca)?);
        Ok(Self {
            server: Some(CertKey::new(
                read_path("MPC_TLS_CERT", own)?,
                read_path("MPC_TLS_KEY", own_key)?,
            )),
            client_ca: mutual.then(|| ca.clone()),
            ca: Some(ca),
            client: None,
        })
    }

    /// Whether the listeners serve TLS.
    pub fn serves_tls(&self) -> bool {
        self.server.is_some()
    }

    /// The certificate a client presents: its own, else the service's.
    fn client_identity(&self) -> Option<&CertKey> {
        self.client.as_ref().or(self.server.as_ref())
    }

    fn client_verifier(
        &self,
        required: bool,
    ) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
        let Some(ca) = &self.client_ca else {
            return Ok(None);
        };
        let builder = WebPkiClientVerifier::builder(Arc::new(roots(ca, "MPC_TLS_CLIENT_CA")?));
        let builder = if required {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        builder
            .build()
            .map(Some)
            .map_err(|e| TlsError::ClientVerifier(e.to_string()))
    }

    /// The rustls configuration of an HTTP listener (HTTP/2 and HTTP/1.1), or `None` for
    /// plaintext. A client certificate is verified when presented, never required.
    pub fn http_server(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        let Some(own) = &self.server else {
            return Ok(None);
        };
        let (chain, key) = own.parse("MPC_TLS_CERT")?;
        let builder = rustls::ServerConfig::builder();
        let mut config = match self.client_verifier(false)? {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        }
        .with_single_cert(chain, key)?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Some(Arc::new(config)))
    }

    /// The tonic TLS configuration of a gRPC listener, or `None` for plaintext. With a client CA
    /// a client certificate is required.
    pub fn grpc_server(&self) -> Result<Option<tonic::transport::ServerTlsConfig>, TlsError> {
        let Some(own) = &self.server else {
            return Ok(None);
        };
        own.parse("MPC_TLS_CERT")?;
        let identity = tonic::transport::Identity::from_pem(own.cert.as_slice(), own.key.bytes());
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            certs(ca, "MPC_TLS_CLIENT_CA")?;
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca.as_slice()));
        }
        Ok(Some(config))
    }

    /// A rustls client configuration (for reqwest's `use_preconfigured_tls`) trusting only
    /// `MPC_TLS_CA` and presenting the client certificate; `None` when no CA is configured.
    pub fn rustls_client(&self) -> Result<Option<rustls::ClientConfig>, TlsError> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let builder =
            rustls::ClientConfig::builder().with_root_certificates(roots(ca, "MPC_TLS_CA")?);
        let mut config = match self.client_identity() {
            Some(id) => {
                let (chain, key) = id.parse("MPC_TLS_CLIENT_CERT")?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Some(config))
    }

    /// Adds TLS to a tonic endpoint whose URI is `https://…`; plain `http://` is left alone.
    pub fn grpc_endpoint(
        &self,
        endpoint: tonic::transport::Endpoint,
    ) -> Result<tonic::transport::Endpoint, TlsError> {
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(endpoint);
        }
        let ca = self
            .ca
            .as_ref()
            .ok_or_else(|| TlsError::NoCa(endpoint.uri().to_string()))?;
        certs(ca, "MPC_TLS_CA")?;
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca.as_slice()));
        if let Some(id) = self.client_identity() {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                id.cert.as_slice(),
                id.key.bytes(),
            ));
        }
        Ok(endpoint.tls_config(tls)?)
    }

    /// A reqwest client builder trusting `MPC_TLS_CA` (and presenting the client certificate)
    /// when a CA is configured.
    pub fn reqwest_builder(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        Ok(match self.rustls_client()? {
            Some(config) => builder.tls_backend_preconfigured(config),
            None => builder,
        })
    }
}

/// Who a verified client certificate says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No client certificate (plaintext, or TLS without mutual authentication).
    Anonymous,
    /// A server party: URI SAN `urn:mpc:party:<id>`.
    Party(String),
    /// A service: URI SAN `urn:mpc:service:<name>`.
    Service(String),
    /// A certificate that names neither; treated as no identity for party checks.
    Unnamed,
}

impl PeerIdentity {
    /// The identity in a DER certificate already verified by rustls against the client CA.
    pub fn from_der(der: &[u8]) -> Self {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return Self::Unnamed;
        };
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return Self::Unnamed;
        };
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                if let Some(party) = uri.strip_prefix(PARTY_URI_PREFIX) {
                    return Self::Party(party.to_owned());
                }
                if let Some(service) = uri.strip_prefix(SERVICE_URI_PREFIX) {
                    return Self::Service(service.to_owned());
                }
            }
        }
        Self::Unnamed
    }

    /// The identity of a gRPC caller, from the leaf certificate of its TLS connection.
    pub fn of_request<T>(request: &tonic::Request<T>) -> Self {
        match request.peer_certs() {
            Some(chain) => chain
                .first()
                .map_or(Self::Unnamed, |leaf| Self::from_der(leaf.as_ref())),
            None => Self::Anonymous,
        }
    }

    /// Refuses a caller whose certificate names a server party other than `party`, the party it
    /// acts for (from its join token or request). A service certificate (the Server Party API
    /// acting for devices) and no certificate pass: whether a certificate is required at all is
    /// the listener's `MPC_TLS_CLIENT_CA`.
    pub fn authorize_party(&self, party: &str) -> Result<(), ApiError> {
        match self {
            Self::Party(named) if named != party => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "the client certificate names party {named}, which may not act as party {party}"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// [`PeerIdentity::authorize_party`] for the party a join token names. The token's signature is
/// not checked here; the handler verifies it right after, so a forged claim gains nothing.
pub fn authorize_join_token<T>(
    request: &tonic::Request<T>,
    join_token: &str,
) -> Result<(), ApiError> {
    let peer = PeerIdentity::of_request(request);
    if matches!(peer, PeerIdentity::Party(_))
        && let Some(party) = mpc_proto::token::peek_party(join_token)
    {
        peer.authorize_party(&party)?;
    }
    Ok(())
}
