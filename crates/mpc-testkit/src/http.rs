//! A small HTTP/1 client for tests: status and body (JSON when it parses).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// An HTTP answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
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
}

/// `GET http://{addr}{path}`.
pub async fn get(addr: SocketAddr, path: &str) -> Result<HttpResponse, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method("GET")
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok(HttpResponse { status, body })
}

/// `POST http://{addr}{path}` with a JSON body and extra headers.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Result<HttpResponse, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok(HttpResponse { status, body })
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
