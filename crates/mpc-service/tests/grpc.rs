//! `serve_grpc` and the gRPC metrics layer, over real gRPC (the standard health service).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::sample;
use mpc_service::{Metrics, Shutdown, serve_grpc};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn grpc_layer_counts_calls_by_method_and_code() {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("mpc.test.Known", tonic_health::ServingStatus::Serving)
        .await;
    let metrics = Metrics::new("coordinator");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn({
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        async move { serve_grpc(listener, Routes::new(health), shutdown, &metrics).await }
    });

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel.clone());
    for _ in 0..2 {
        client
            .check(HealthCheckRequest {
                service: "mpc.test.Known".into(),
            })
            .await
            .unwrap();
    }
    let missing = client
        .check(HealthCheckRequest {
            service: "mpc.test.Unknown".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // A method the server does not have: counted, but under `unmatched`, not its path.
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let unknown = raw
        .unary::<(), (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/mpc.nope.v1.Nope/Nothing"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);

    let text = metrics.encode();
    let check = "/grpc.health.v1.Health/Check";
    assert_eq!(
        sample(
            &text,
            "mpc_grpc_requests_total",
            &[
                ("service", "coordinator"),
                ("method", check),
                ("code", "ok")
            ]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "mpc_grpc_requests_total",
            &[("method", check), ("code", "not_found")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "mpc_grpc_request_duration_seconds_count",
            &[("method", check)]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "mpc_grpc_requests_total",
            &[("method", "unmatched"), ("code", "unimplemented")]
        ),
        1.0
    );
    assert!(
        !text.contains("Nope"),
        "unknown path leaked into labels:\n{text}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("gRPC server did not stop after shutdown")
        .unwrap()
        .unwrap();
}

/// A stream that never ends (health `Watch`) does not hold shutdown up beyond the grace period.
#[tokio::test]
async fn shutdown_closes_open_streams_after_the_grace_period() {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("mpc.test.Known", tonic_health::ServingStatus::Serving)
        .await;
    let metrics = Metrics::new("router");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn({
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        async move {
            mpc_service::serve_grpc_with_grace(
                listener,
                Routes::new(health),
                shutdown,
                &metrics,
                Duration::from_millis(200),
            )
            .await
        }
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stream = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "mpc.test.Known".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // The first status arrives; the stream then stays open waiting for changes.
    assert!(stream.message().await.unwrap().is_some());
    shutdown.cancel();
    // Without the grace period this would wait for the stream for ever.
    let result = tokio::time::timeout(Duration::from_secs(30), server).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "server did not stop: {result:?}"
    );
    drop(reporter);
}
