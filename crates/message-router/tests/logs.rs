//! The router never logs payload bytes: every `tracing` event of a busy session (at TRACE, from
//! every crate) is captured and searched for the payload in every encoding a log could use.
//! A test binary of its own, because it installs the process-wide subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "router/common.rs"]
#[allow(dead_code)]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use mpc_proto::ErrorCode;
use mpc_store::testing::TestDb;

use common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const SECRET: &[u8] = b"PAYLOAD-7f3a9c-do-not-log";

async fn payloads_never_reach_the_logs(t: TestDb, logs: Captured) {
    let f = Fixture::start_with(t, |c| c.max_payload_bytes = 4096).await;
    let s = f.coordinator.session(&["a", "b", "c"]);
    let mut client = f.client().await;
    let mut stream = subscribe(&mut client, &s, "b", 0).await.unwrap();

    let env = s.envelope("a", "", 1, SECRET);
    let stored = route(&mut client, &s.token("a"), env.clone())
        .await
        .unwrap();
    assert!(
        route(&mut client, &s.token("a"), env.clone())
            .await
            .unwrap()
            .duplicate
    );
    let mut conflicting = env.clone();
    conflicting.payload = [SECRET, b"-v2"].concat();
    assert_eq!(
        code(route(&mut client, &s.token("a"), conflicting).await),
        ErrorCode::AlreadyExists
    );
    let too_big = s.envelope("a", "b", 1, &SECRET.repeat(200));
    assert_eq!(
        code(route(&mut client, &s.token("a"), too_big).await),
        ErrorCode::PayloadTooLarge
    );
    let forged = s.envelope("b", "c", 1, SECRET);
    assert_eq!(
        code(route(&mut client, &s.token("a"), forged).await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(next(&mut stream).await.payload, SECRET);
    fetch(&mut client, &s, "c", 0, 0, 0).await.unwrap();
    let http = Http::new();
    let url = f
        .router
        .http_url(&format!("/api/v1/sessions/{}/messages?party_id=c", s.id));
    let (status, _, _) = http.send("GET", &url, Some(&s.token("c")), None).await;
    assert_eq!(status, 200);
    drop(stream);
    f.stop().await;

    let text = logs.text();
    // The capture works: the router's own events about this envelope are there.
    assert!(
        text.contains(&stored.message_id) && text.contains("envelope stored"),
        "no router events captured:\n{text}"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    let debug_bytes = format!("{:?}", &SECRET[..8])
        .trim_end_matches(']')
        .to_owned();
    for needle in ["PAYLOAD-7f3a9c", &b64[..16], &hex[..16], &debug_bytes] {
        assert!(
            !text.contains(needle),
            "payload leaked to the logs as {needle:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_never_reach_the_logs_on_any_backend() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    payloads_never_reach_the_logs(TestDb::sqlite().await, logs.clone()).await;
    if let Some(db) = TestDb::postgres().await {
        payloads_never_reach_the_logs(db, logs).await;
    }
}
