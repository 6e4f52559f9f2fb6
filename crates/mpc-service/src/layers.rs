//! Request metrics as tower middleware, for axum routers and tonic servers.
//!
//! Label values are bounded so that a client cannot grow the registry: HTTP routes are the
//! matched path *template* (`/api/v1/sessions/{id}`), never the raw path; unknown HTTP methods
//! are `other`; requests that matched no route or gRPC method are `unmatched`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// The label value for requests that matched no route or method.
pub const UNMATCHED: &str = "unmatched";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to ~33 s: MPC sessions answer in milliseconds (sign) to seconds (keygen).
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpDurationLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: Family<HttpRequestLabels, Counter>,
    duration: HistogramFamily<HttpDurationLabels>,
}

impl HttpMetrics {
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let this = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        metrics.register(
            "mpc_http_requests",
            "HTTP requests by method, route template and status",
            this.requests.clone(),
        );
        metrics.register(
            "mpc_http_request_duration_seconds",
            "HTTP request latency to the response head, by method and route template",
            this.duration.clone(),
        );
        this
    }
}

/// Records `mpc_http_requests_total{method,route,status}` and
/// `mpc_http_request_duration_seconds{method,route}` for an axum router.
///
/// Add it with `Router::layer` (so that axum has matched the route and `MatchedPath` is known)
/// and *after* [`crate::catch_panic_layer`], so that a panicking handler is counted as a 500.
pub fn http_metrics_layer(metrics: &Metrics) -> HttpMetricsLayer {
    HttpMetricsLayer {
        metrics: metrics.http(),
    }
}

#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: HttpMetrics,
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let method = method_label(req.method());
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            // An `Err` never reaches the client as a response of ours; hyper answers 500.
            let status = result.as_ref().map_or(500, |r| r.status().as_u16());
            metrics
                .duration
                .get_or_create(&HttpDurationLabels {
                    method,
                    route: route.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            metrics
                .requests
                .get_or_create(&HttpRequestLabels {
                    method,
                    route,
                    status,
                })
                .inc();
            result
        })
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcRequestLabels {
    method: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcDurationLabels {
    method: String,
}

#[derive(Clone)]
pub(crate) struct GrpcMetrics {
    requests: Family<GrpcRequestLabels, Counter>,
    duration: HistogramFamily<GrpcDurationLabels>,
}

impl GrpcMetrics {
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let this = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        metrics.register(
            "mpc_grpc_requests",
            "gRPC calls by method and status code (the code at response start; ok otherwise)",
            this.requests.clone(),
        );
        metrics.register(
            "mpc_grpc_request_duration_seconds",
            "gRPC latency to the response head (streams: to stream start), by method",
            this.duration.clone(),
        );
        this
    }
}

/// Records `mpc_grpc_requests_total{method,code}` and `mpc_grpc_request_duration_seconds{method}`
/// for a tonic server (`Server::builder().layer(grpc_metrics_layer(&metrics))`; [`crate::serve_grpc`]
/// does this for you).
///
/// `method` is the gRPC path (`/mpc.router.v1.MessageRouter/RouteMessage`). `code` is read from
/// the `grpc-status` header of the response head: tonic puts it there for calls that fail before
/// sending a message (all unary errors). A status sent later in trailers (a stream that fails
/// midway) is not seen, and such calls count as `ok`; streams are timed to their start.
/// Calls to a method the server does not have (`unimplemented` with no route) are labelled
/// `unmatched`, which keeps arbitrary paths out of the registry; a real method that answers
/// `unimplemented` is counted the same way.
pub fn grpc_metrics_layer(metrics: &Metrics) -> GrpcMetricsLayer {
    GrpcMetricsLayer {
        metrics: metrics.grpc(),
    }
}

#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: GrpcMetrics,
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: GrpcMetrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
                Err(_) => tonic::Code::Internal,
            };
            let method = if code == tonic::Code::Unimplemented {
                UNMATCHED.to_owned()
            } else {
                path
            };
            metrics
                .duration
                .get_or_create(&GrpcDurationLabels {
                    method: method.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            metrics
                .requests
                .get_or_create(&GrpcRequestLabels {
                    method,
                    code: grpc_code_label(code),
                })
                .inc();
            result
        })
    }
}

/// The canonical snake_case name of a gRPC status code.
pub fn grpc_code_label(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn middleware_metrics_register_once_per_registry() {
        let metrics = Metrics::new("svc");
        let first = metrics.http();
        let second = metrics.http();
        let labels = HttpRequestLabels {
            method: "GET",
            route: "/x".to_owned(),
            status: 200,
        };
        first.requests.get_or_create(&labels).inc();
        second.requests.get_or_create(&labels).inc();
        let text = metrics.encode();
        assert_eq!(
            text.matches("# TYPE mpc_http_requests counter").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains(
                r#"mpc_http_requests_total{service="svc",method="GET",route="/x",status="200"} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let custom = Method::from_bytes(b"PURGE").unwrap_or(Method::GET);
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
