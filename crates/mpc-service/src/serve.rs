//! Running HTTP and gRPC servers on listeners the caller bound, until shutdown.
//!
//! The caller binds (port 0 in tests) and so knows the address before serving starts: no test
//! ever waits for a server to come up.

use std::io;
use std::time::Duration;

use axum::Router;
use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tonic::service::Routes;
use tonic::transport::Server;

use crate::Shutdown;
use crate::layers::grpc_metrics_layer;
use crate::metrics::Metrics;

/// Completes on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and waits
/// for in-flight requests to finish.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> io::Result<()> {
    // With the peer's address (`ConnectInfo`), for the credential-failure throttle.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

/// Serves the gRPC `routes` on `listener` with [`crate::grpc_metrics_layer`] applied, until
/// `shutdown` is cancelled; then stops accepting and drains open calls.
pub async fn serve_grpc(
    listener: TcpListener,
    routes: Routes,
    shutdown: Shutdown,
    metrics: &Metrics,
) -> Result<(), tonic::transport::Error> {
    serve_grpc_with_grace(listener, routes, shutdown, metrics, GRPC_SHUTDOWN_GRACE).await
}

/// [`serve_grpc`] with a chosen grace period for open calls after shutdown.
pub async fn serve_grpc_with_grace(
    listener: TcpListener,
    routes: Routes,
    shutdown: Shutdown,
    metrics: &Metrics,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let server = Server::builder()
        .layer(grpc_metrics_layer(metrics))
        .add_routes(routes)
        .serve_with_incoming_shutdown(accept_loop(listener), shutdown.clone().cancelled_owned());
    tokio::pin!(server);
    // tonic waits for every open connection to finish; a client that stops reading (or a
    // long-lived stream) would hold shutdown up for ever, so give them a grace period.
    tokio::select! {
        result = &mut server => result,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "gRPC connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// How long a shut-down gRPC server waits for open calls and streams to finish.
pub const GRPC_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The accepted connections of `listener`, never ending in an error.
///
/// tonic stops serving on any accept error other than a reset connection; running out of file
/// descriptors under load must not kill the server for good, so such errors are logged and
/// retried after a pause (as `axum::serve` does).
fn accept_loop(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    // gRPC messages are small and latency-bound: do not batch them.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    return Some((Ok(stream), listener));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC accept failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
