//! A real HTTP client for the tests (hyper, HTTP/1.1), and servers on port 0.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mpc_service::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(ct) = content_type {
        req = req.header(http::header::CONTENT_TYPE, ct);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    HttpResponse {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path, None, Bytes::new()).await
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &str) -> HttpResponse {
    request(
        addr,
        "POST",
        path,
        Some("application/json"),
        Bytes::from(body.to_owned()),
    )
    .await
}

/// Binds `127.0.0.1:0` first, then serves: the address is usable as soon as this returns.
pub async fn spawn_http(
    router: axum::Router,
) -> (SocketAddr, Shutdown, JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(mpc_service::serve_http(listener, router, shutdown.clone()));
    (addr, shutdown, task)
}

/// The value of the one sample line of `text` whose name is `name` and whose labels include
/// every `labels` pair; panics if there is not exactly one.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matches: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "expected one `{name}` sample with {labels:?}, found {matches:?} in:\n{text}"
    );
    matches[0]
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {:?}", matches[0]))
}
