//! TLS and mutual TLS on real listeners with certificates from `tls_gen`: plaintext, an unknown
//! CA and a missing client certificate are refused; a party certificate names its party and may
//! not act as another; regenerating the local CA reuses the files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mpc_proto::ErrorCode;
use mpc_service::tls_gen::{LocalPki, Subject, ensure_local_pki};
use mpc_service::{Metrics, PeerIdentity, Shutdown, TlsConfig, serve_grpc_tls};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

fn pki(dir: &std::path::Path) -> LocalPki {
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    ensure_local_pki(
        dir,
        &[
            Subject::service("coordinator", &hosts),
            Subject::party("server_party_1", &hosts),
            Subject::party("server_party_2", &hosts),
        ],
    )
    .unwrap()
}

/// A mutual-TLS gRPC server (the health service); returns its address.
async fn mtls_server(pki: &LocalPki) -> (std::net::SocketAddr, Shutdown) {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let tls = pki
        .config("coordinator", true)
        .unwrap()
        .grpc_server()
        .unwrap();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            serve_grpc_tls(
                listener,
                Routes::new(health),
                shutdown,
                &Metrics::new("t"),
                tls,
            )
            .await
        }
    });
    (addr, shutdown)
}

async fn check(endpoint: Endpoint) -> Result<(), String> {
    let call = async {
        let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    };
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

#[tokio::test]
async fn mutual_tls_refuses_plaintext_unknown_ca_and_no_client_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (addr, shutdown) = mtls_server(&pki).await;
    let https = || Endpoint::from_shared(format!("https://localhost:{}", addr.port())).unwrap();

    // A party with its certificate gets through.
    let party = pki.config("server_party_1", true).unwrap();
    check(party.grpc_endpoint(https()).unwrap()).await.unwrap();

    // Plaintext gRPC to the TLS port fails.
    let plain = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    assert!(check(plain).await.is_err());

    // Trusting the CA but presenting no certificate: refused by the server.
    let no_cert = TlsConfig {
        ca: party.ca.clone(),
        ..Default::default()
    };
    let refused = check(no_cert.grpc_endpoint(https()).unwrap()).await;
    assert!(refused.is_err(), "a client without a certificate got in");

    // A client of another CA refuses the server (and would be refused by it).
    let other_dir = tempfile::tempdir().unwrap();
    let other = pki_other(other_dir.path());
    assert!(check(other.grpc_endpoint(https()).unwrap()).await.is_err());

    // An https:// endpoint without MPC_TLS_CA is a configuration error, never plaintext.
    assert!(TlsConfig::default().grpc_endpoint(https()).is_err());
    shutdown.cancel();
}

fn pki_other(dir: &std::path::Path) -> TlsConfig {
    let other = ensure_local_pki(
        dir,
        &[Subject::party("server_party_1", &["localhost".to_owned()])],
    )
    .unwrap();
    other.config("server_party_1", true).unwrap()
}

#[test]
fn a_party_certificate_names_its_party_and_may_not_act_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let der = |name: &str| {
        let pem = std::fs::read(dir.path().join(format!("{name}.pem"))).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        pem.contents
    };
    let _ = pki;
    let party = PeerIdentity::from_der(&der("server_party_1"));
    assert_eq!(party, PeerIdentity::Party("server_party_1".into()));
    party.authorize_party("server_party_1").unwrap();
    let refused = party.authorize_party("server_party_2").unwrap_err();
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
    assert_eq!(
        tonic::Status::from(refused).code(),
        tonic::Code::PermissionDenied
    );
    // A service certificate (the Server Party API acting for devices) is not a party.
    let service = PeerIdentity::from_der(&der("coordinator"));
    assert_eq!(service, PeerIdentity::Service("coordinator".into()));
    service.authorize_party("user_device_1").unwrap();
}

#[test]
fn regenerating_reuses_valid_files_and_replaces_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
    let (ca, cert, key) = (
        read("ca.pem"),
        read("server_party_1.pem"),
        read("server_party_1-key.pem"),
    );
    pki(dir.path());
    assert_eq!(read("ca.pem"), ca);
    assert_eq!(read("server_party_1.pem"), cert);
    assert_eq!(read("server_party_1-key.pem"), key);
    // Another host name: that certificate is reissued under the same CA.
    ensure_local_pki(
        dir.path(),
        &[Subject::party(
            "server_party_1",
            &["party1.internal".to_owned()],
        )],
    )
    .unwrap();
    assert_eq!(read("ca.pem"), ca);
    assert_ne!(read("server_party_1.pem"), cert);
}
