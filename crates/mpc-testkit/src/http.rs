//! A small HTTP/1 client for tests: status, headers and body (JSON when it parses).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// An HTTP answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The body as JSON, or as a JSON string when it is not JSON (e.g. `/metrics`).
    pub body: serde_json::Value,
}

impl HttpResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        match &self.body {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// A response header, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of an `{"error": {"code", "message"}}` body ("" otherwise).
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// `error.message` of an `{"error": {"code", "message"}}` body ("" otherwise).
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// `method http://{addr}{path}` with extra headers and an optional body (sent as
/// `application/json`, whatever the bytes are).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<HttpResponse, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// `GET http://{addr}{path}`.
pub async fn get(addr: SocketAddr, path: &str) -> Result<HttpResponse, String> {
    request(addr, "GET", path, &[], None).await
}

/// Polls `/readyz` until it answers 200, for at most `within`; the last answer when it never
/// does.
pub async fn wait_ready(addr: SocketAddr, within: std::time::Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match get(addr, "/readyz").await {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => format!("{} {}", r.status, r.body),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `GET http://{addr}{path}` with extra headers.
pub async fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    request(addr, "GET", path, headers, None).await
}

/// `POST http://{addr}{path}` with a JSON body and extra headers.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Result<HttpResponse, String> {
    request(
        addr,
        "POST",
        path,
        headers,
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// The value of a Prometheus sample `name{…labels…}` (labels given as `k="v"` fragments that
/// must all appear), or `None` when no such sample exists.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
