//! JSON in and out of axum handlers, with every failure answered as an [`ApiError`] body.

use std::any::Any;

use axum::Router;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use mpc_proto::{ApiError, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;

/// The body limit [`with_body_limit`] callers use unless they have a reason not to: large enough
/// for a keygen round of 16 parties, small enough that a client cannot make us buffer much.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A JSON request body or response.
///
/// As an extractor it accepts `Content-Type: application/json` (or `…+json`) and answers every
/// failure with a 400 `invalid_argument` [`ApiError`] a person can act on, e.g.
/// `invalid JSON body: missing field `threshold_n` at line 1 column 20`; a body over the
/// [`with_body_limit`] limit gets 413 `payload_too_large`. As a response it serialises `T`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection_to_api_error(&rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => {
                ApiError::internal(&format_args!("response serialisation: {e}")).into_response()
            }
        }
    }
}

fn json_rejection_to_api_error(rejection: &JsonRejection) -> ApiError {
    // The inner serde message says what is wrong and where (`missing field `x` at line 1
    // column 20`); axum's own prefix ("Failed to deserialize the JSON body into the target
    // type") adds nothing for a client.
    let detail = |e: &dyn std::error::Error| {
        e.source()
            .map_or_else(|| e.to_string(), |inner| inner.to_string())
    };
    match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::invalid_argument(format!("invalid JSON body: {}", detail(e)))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::invalid_argument(format!("invalid JSON body: {}", detail(e)))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid_argument("expected a JSON body with `Content-Type: application/json`")
        }
        JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(e))
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
        {
            payload_too_large()
        }
        JsonRejection::BytesRejection(_) => {
            ApiError::invalid_argument("could not read the request body")
        }
        _ => ApiError::invalid_argument("invalid JSON body"),
    }
}

fn payload_too_large() -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
}

/// Fallback for routes that do not exist: 404 `{"error":{"code":"not_found",…}}` instead of
/// axum's empty body. Use with `Router::fallback(not_found_fallback)`.
pub async fn not_found_fallback() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// The handler type of [`catch_panic_layer`], named so that services can store the layer.
pub type PanicHandler = fn(Box<dyn Any + Send + 'static>) -> Response;

/// Turns a panicking handler into a 500 `internal` [`ApiError`]. The panic message is logged at
/// error level, never sent: it may name internals.
pub fn catch_panic_layer() -> CatchPanicLayer<PanicHandler> {
    CatchPanicLayer::custom(panic_response as PanicHandler)
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let text = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = %text, "request handler panicked");
    ApiError::from_code(ErrorCode::Internal).into_response()
}

/// Limits request bodies to `max_bytes` for every route of `router` (replacing axum's 2 MiB
/// default) and makes the 413 a JSON [`ApiError`] (`payload_too_large`) for every extractor,
/// not only [`ApiJson`] (axum's `Bytes`/`String` extractors answer in plain text otherwise).
///
/// Apply it to the finished router, after the routes: like every `Router::layer`, it only
/// covers routes that exist when it is called.
pub fn with_body_limit(router: Router, max_bytes: usize) -> Router {
    router
        .layer(middleware::from_fn(json_payload_too_large))
        .layer(DefaultBodyLimit::max(max_bytes))
}

async fn json_payload_too_large(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        payload_too_large().into_response()
    } else {
        response
    }
}

/// How long a request may take, chosen per request (e.g. by its route template, or longer for a
/// long poll).
pub type DeadlineFn = std::sync::Arc<dyn Fn(&Request) -> std::time::Duration + Send + Sync>;

/// Bounds every request of `router` (body upload included) by `deadline(request)`: a request
/// still running then is dropped and answered 504 `timeout` (JSON, with `Connection: close`,
/// since its body may not have been read), so that a slow or stalled client cannot hold a
/// connection and a task forever. Apply it last, outside the body-reading layers.
pub fn with_deadline(router: Router, deadline: DeadlineFn) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let deadline = deadline.clone();
        async move { run_with_deadline(deadline(&req), req, next).await }
    }))
}

/// [`with_deadline`] with one deadline for every request.
pub fn with_fixed_deadline(router: Router, deadline: std::time::Duration) -> Router {
    with_deadline(router, std::sync::Arc::new(move |_: &Request| deadline))
}

async fn run_with_deadline(deadline: std::time::Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "the request did not complete within the server's deadline of {} ms",
                    deadline.as_millis()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
