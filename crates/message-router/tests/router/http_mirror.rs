//! The HTTP mirror and the ops endpoints, over real HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mpc_store::testing::TestDb;
use serde_json::json;

use crate::common::*;

async fn http_round_trip_with_base64(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b", "c"]);
    let http = Http::new();
    let url = f
        .router
        .http_url(&format!("/api/v1/sessions/{}/messages", s.id));
    let payload: Vec<u8> = (0..=255u8).collect(); // not UTF-8
    let message_id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "message_id": message_id,
        "from_party": "a",
        "to_party": "b",
        "round": 4,
        "payload": BASE64.encode(&payload),
    });
    let (status, reply, _) = http
        .send(
            "POST",
            &url,
            Some(&s.token("a")),
            Some(body.to_string().into_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({"message_id": message_id, "duplicate": false, "recipients": 1})
    );
    let (status, reply, _) = http
        .send(
            "POST",
            &url,
            Some(&s.token("a")),
            Some(body.to_string().into_bytes()),
        )
        .await;
    assert_eq!((status, &reply["duplicate"]), (200, &json!(true)));

    // A broadcast with `to_party` omitted.
    let bcast = json!({
        "message_id": uuid::Uuid::new_v4().to_string(),
        "from_party": "c",
        "round": 5,
        "payload": BASE64.encode(b"all"),
    });
    let (status, reply, _) = http
        .send(
            "POST",
            &url,
            Some(&s.token("c")),
            Some(bcast.to_string().into_bytes()),
        )
        .await;
    assert_eq!((status, &reply["recipients"]), (200, &json!(2)), "{reply}");

    let (status, got, _) = http
        .send(
            "GET",
            &format!("{url}?party_id=b&after_seq=0"),
            Some(&s.token("b")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        (&got["last_seq"], &got["has_more"]),
        (&json!(2), &json!(false))
    );
    let messages = got["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let first = &messages[0];
    assert_eq!(first["message_id"], json!(message_id));
    assert_eq!(first["session_id"], json!(s.id.to_string()));
    assert_eq!(
        (&first["from_party"], &first["to_party"]),
        (&json!("a"), &json!("b"))
    );
    assert_eq!((&first["round"], &first["seq"]), (&json!(4), &json!(1)));
    let decoded = BASE64.decode(first["payload"].as_str().unwrap()).unwrap();
    assert_eq!(decoded, payload);
    assert!(
        first["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(messages[1]["to_party"], json!(null));

    // Paging with limit and after_seq.
    let (_, page, _) = http
        .send(
            "GET",
            &format!("{url}?party_id=b&after_seq=1&limit=1"),
            Some(&s.token("b")),
            None,
        )
        .await;
    assert_eq!(page["messages"][0]["seq"], json!(2));

    // gRPC sees the same mailbox.
    let mut client = f.client().await;
    let via_grpc = fetch(&mut client, &s, "b", 0, 0, 0).await.unwrap();
    assert_eq!(via_grpc.messages[0].payload, payload);
    f.stop().await;
}
mpc_store::backend_tests!(round_trip, http_round_trip_with_base64);

struct Case<'a> {
    what: &'static str,
    status: u16,
    code: &'static str,
    method: &'static str,
    url: String,
    token: Option<&'a str>,
    body: Option<Vec<u8>>,
}

async fn http_errors_are_api_error_json(t: TestDb) {
    let f = Fixture::start_with(t, |c| c.max_payload_bytes = 1000).await;
    let s = f.coordinator.session(&["a", "b"]);
    let http = Http::new();
    let url = f
        .router
        .http_url(&format!("/api/v1/sessions/{}/messages", s.id));
    let body = |payload: &str| {
        json!({"message_id": uuid::Uuid::new_v4().to_string(), "from_party": "a", "to_party": "b",
               "round": 1, "payload": payload})
        .to_string()
        .into_bytes()
    };
    let ok_body = body(&BASE64.encode(b"x"));
    let token = s.token("a");

    let post = |what, status, code, token, body| Case {
        what,
        status,
        code,
        method: "POST",
        url: url.clone(),
        token,
        body: Some(body),
    };
    let get = |what, status, code, url, token| Case {
        what,
        status,
        code,
        method: "GET",
        url,
        token,
        body: None,
    };
    let bad_session_url = f.router.http_url("/api/v1/sessions/nope/messages");
    let cases = [
        post("no token", 401, "invalid_join_token", None, ok_body.clone()),
        post(
            "bad token",
            401,
            "invalid_join_token",
            Some("x.y.z"),
            ok_body.clone(),
        ),
        post(
            "bad base64",
            400,
            "invalid_argument",
            Some(&token),
            body("%%%"),
        ),
        post(
            "bad json",
            400,
            "invalid_argument",
            Some(&token),
            b"{".to_vec(),
        ),
        post(
            "payload over the limit",
            413,
            "payload_too_large",
            Some(&token),
            body(&BASE64.encode([0u8; 1001])),
        ),
        post(
            "body over the limit",
            413,
            "payload_too_large",
            Some(&token),
            // Just over the body limit (a few KB): the router reads nearly all of it before it
            // refuses, so the client is not cut off while still sending (a reset, not a 413).
            body(&BASE64.encode(vec![0u8; 51_000])),
        ),
        Case {
            url: bad_session_url,
            ..post(
                "bad session in path",
                400,
                "invalid_argument",
                Some(&token),
                ok_body.clone(),
            )
        },
        get(
            "no party_id",
            400,
            "invalid_argument",
            url.clone(),
            Some(&token),
        ),
        get(
            "bad after_seq",
            400,
            "invalid_argument",
            format!("{url}?party_id=a&after_seq=minus"),
            Some(&token),
        ),
        get(
            "other mailbox",
            403,
            "permission_denied",
            format!("{url}?party_id=b"),
            Some(&token),
        ),
        get(
            "no such route",
            404,
            "not_found",
            f.router.http_url("/api/v1/nothing"),
            None,
        ),
    ];
    for case in cases {
        let (status, reply, text) = http
            .send(case.method, &case.url, case.token, case.body)
            .await;
        let what = case.what;
        assert_eq!(status, case.status, "{what}: {text}");
        assert_eq!(reply["error"]["code"], json!(case.code), "{what}: {text}");
        assert!(reply["error"]["message"].is_string(), "{what}: {text}");
    }
    f.stop().await;
}
mpc_store::backend_tests!(errors, http_errors_are_api_error_json);

async fn ops_endpoints_and_metrics(t: TestDb) {
    let f = Fixture::start(t).await;
    let http = Http::new();
    let (status, body, _) = http
        .send("GET", &f.router.http_url("/healthz"), None, None)
        .await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body, _) = http
        .send("GET", &f.router.http_url("/readyz"), None, None)
        .await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));

    let s = f.coordinator.session(&["a", "b", "c"]);
    let mut client = f.client().await;
    let mut stream = subscribe(&mut client, &s, "b", 0).await.unwrap();
    route(
        &mut client,
        &s.token("a"),
        s.envelope("a", "", 1, &[9; 100]),
    )
    .await
    .unwrap();
    next(&mut stream).await;
    let (status, _, text) = http
        .send("GET", &f.router.http_url("/metrics"), None, None)
        .await;
    assert_eq!(status, 200);
    for line in [
        "mpc_router_messages_total{service=\"message-router\"} 1",
        "mpc_router_bytes_total{service=\"message-router\"} 100",
        "mpc_router_active_subscriptions{service=\"message-router\"} 1",
        "mpc_router_delivery_latency_seconds_count{service=\"message-router\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("mpc_grpc_requests_total"), "{text}");

    // With the database closed, the router is not ready (and says why).
    f.db.db.close().await;
    let (status, body, _) = http
        .send("GET", &f.router.http_url("/readyz"), None, None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["message"], json!("not ready: database"));
    drop(stream);
    f.stop().await;
}
mpc_store::backend_tests!(ops, ops_endpoints_and_metrics);
