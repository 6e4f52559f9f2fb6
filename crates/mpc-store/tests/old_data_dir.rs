//! A data directory written by release 0.1.0 (`mpc up`'s SQLite files, before the SQLite columns
//! were renamed to PostgreSQL's names) opens with this version: its migrations apply, every row
//! reads back as it was written, and the stores keep working on it.
//!
//! `fixtures/data-dir-0.1.0/` was written by [`write_fixture`] running on the 0.1.0 code (commit
//! c0ba988), through the stores' public interfaces, into files named as `mpc up` names them.
//! The test works on a copy, never on the committed files. When a later release changes a
//! SQLite schema, write a new fixture the same way with the code before the change, and keep
//! the old ones: every released format must still open.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{
    AccountId, MessageId, ParticipantStatus, PartyId, SessionId, SessionStatus, SessionType,
    Threshold,
};
use mpc_store::account::{
    self, AccountRecord, AccountSessionRecord, AccountSessionStatus, AccountStatus, ApiKeyScope,
    AuditFilter, IdempotencyClaim, IdempotencyKey, NewAccount, NewAccountSession, NewApiKey,
    NewAuditEntry, ShareType,
};
use mpc_store::coordinator::{
    self, NewParticipant, NewSession, OutboxEvent, ParticipantUpdate, PartyReport, SessionUpdate,
    StoredSignature,
};
use mpc_store::party::{
    self, KeyBan, LocalState, OutcomeEffect, PendingOutcome, SessionOutcome, ShareRecord,
    ShareStatus, StoredIdentity,
};
use mpc_store::router::{self, FetchOutcome, Mailbox, NewEnvelope, RouteOutcome};
use mpc_store::{Db, DbConfig};
use uuid::Uuid;

const FIXTURE: &str = "tests/fixtures/data-dir-0.1.0";
const FILES: [&str; 4] = [
    "account.db",
    "coordinator.db",
    "router.db",
    "party-server_party_1.db",
];

/// 2025-01-02T03:04:05.678Z plus `ms`: every time in the fixture, so values compare exactly.
fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_735_787_045_678 + ms).unwrap_or_else(|| panic!("time"))
}

fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap_or_else(|e| panic!("{e:?}"))
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const ALICE: AccountId = AccountId(Uuid::from_u128(0xa1));
const BOB: AccountId = AccountId(Uuid::from_u128(0xa2));
const KEYGEN: SessionId = SessionId(Uuid::from_u128(0x51));
const SIGN: SessionId = SessionId(Uuid::from_u128(0x52));
const OPEN: SessionId = SessionId(Uuid::from_u128(0x53));
const ENDED: SessionId = SessionId(Uuid::from_u128(0x54));
const PURGED: SessionId = SessionId(Uuid::from_u128(0x55));
const REFRESH: SessionId = SessionId(Uuid::from_u128(0x56));
const PENDING: SessionId = SessionId(Uuid::from_u128(0x57));
const API_KEY: u128 = 0xc1;
const THRESHOLD: Threshold = Threshold { t: 2, n: 3 };
const PUBLIC_KEY: [u8; 65] = [4; 65];

fn alice_key() -> String {
    ALICE.to_string()
}

async fn connect(dir: &Path, file: &str) -> Db {
    let url = format!("sqlite://{}", dir.join(file).display());
    Db::connect(&DbConfig::new(url))
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn idempotency_key() -> IdempotencyKey {
    IdempotencyKey {
        api_key_id: API_KEY.to_string(),
        route: "/api/v1/accounts".into(),
        key: "idem-1".into(),
    }
}

fn account_share(index: u16, share_type: ShareType, device: &str) -> account::NewShare {
    account::NewShare {
        party_id: pid(&format!("server_party_{index}")),
        party_index: index,
        share_type,
        device_type: Some(device.into()),
        storage_location: Some(format!("location-{index}")),
    }
}

fn participants() -> Vec<NewParticipant> {
    (1..=3)
        .map(|i| NewParticipant {
            party_id: pid(&format!("server_party_{i}")),
            party_index: i,
            device_type: Some(if i == 3 { "android" } else { "server" }.into()),
        })
        .collect()
}

fn sign_session() -> NewSession {
    NewSession {
        id: SIGN,
        session_type: SessionType::Sign,
        threshold: THRESHOLD,
        key_id: alice_key(),
        message_hash: Some(vec![1; 32]),
        public_key: Some(PUBLIC_KEY.to_vec()),
        recovery: None,
        participants: participants(),
        created_at: at(10),
        expires_at: at(600_010),
    }
}

fn signature() -> StoredSignature {
    StoredSignature {
        r: [0x21; 32],
        s: [0x22; 32],
        v: 1,
        der: vec![0x30, 0x44, 0x02, 0x20],
    }
}

fn event(n: u128, session: SessionId, kind: &str, claimed_until: DateTime<Utc>) -> OutboxEvent {
    OutboxEvent {
        event_id: id(n),
        session_id: session,
        routing_key: kind.into(),
        payload: format!("{{\"kind\":\"{kind}\"}}"),
        claimed_until,
    }
}

fn envelope(n: u128, session: SessionId, from: &str, to: Option<&str>, round: u32) -> NewEnvelope {
    let recipients = match to {
        Some(to) => vec![pid(to)],
        None => ["server_party_1", "server_party_2", "server_party_3"]
            .into_iter()
            .filter(|p| *p != from)
            .map(pid)
            .collect(),
    };
    NewEnvelope {
        message_id: MessageId(id(n)),
        session_id: session,
        from_party: pid(from),
        to_party: to.map(pid),
        recipients,
        round,
        payload: format!("payload {n} round {round}").into_bytes(),
        session_deadline: at(600_010),
        created_at: at(13),
    }
}

fn party_share(n: u128, session: SessionId, created: i64) -> party::NewShare {
    party::NewShare {
        id: id(n),
        key_id: alice_key(),
        party_id: pid("server_party_1"),
        party_index: 1,
        threshold: THRESHOLD,
        public_key: "04".to_owned() + &"ab".repeat(64),
        session_id: session,
        sealed_share: format!("sealed share {n}").into_bytes(),
        kek_id: "kek-1".into(),
        created_at: at(created),
    }
}

fn identity() -> StoredIdentity {
    StoredIdentity {
        party_id: pid("server_party_1"),
        public_key: "aa".repeat(32),
        sealed_key: b"sealed identity".to_vec(),
        kek_id: "kek-1".into(),
        created_at: at(0),
        updated_at: at(0),
    }
}

fn ban() -> KeyBan {
    KeyBan {
        key_id: alice_key(),
        party_id: pid("server_party_3"),
        reason: "invalid proof in round 2".into(),
        session_id: SIGN,
        created_at: at(9),
    }
}

/// Writes the fixture into `$MPC_STORE_FIXTURE_OUT` (run with `--ignored` on the code whose
/// format the fixture is to keep).
#[tokio::test]
#[ignore = "writes a fixture; run by hand on the release whose format it keeps"]
async fn write_fixture() {
    let out = PathBuf::from(
        std::env::var("MPC_STORE_FIXTURE_OUT")
            .unwrap_or_else(|_| panic!("set MPC_STORE_FIXTURE_OUT")),
    );
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
    write_account(&connect(&out, FILES[0]).await).await;
    write_coordinator(&connect(&out, FILES[1]).await).await;
    write_router(&connect(&out, FILES[2]).await).await;
    write_party(&connect(&out, FILES[3]).await).await;
}

async fn write_account(db: &Db) {
    let store = account::open(db).await.unwrap_or_else(|e| panic!("{e}"));
    for (account, name) in [(ALICE, "alice"), (BOB, "bob")] {
        store
            .create_account(&NewAccount {
                id: account,
                username: Some(name.into()),
                email: Some(format!("{name}@example.com")),
                threshold: THRESHOLD,
                created_at: at(0),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    store
        .record_session(&NewAccountSession {
            session_id: KEYGEN,
            account_id: ALICE,
            session_type: SessionType::Keygen,
            recovery: None,
            created_at: at(1),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = account::SessionOutcome::KeygenCompleted {
        public_key: PUBLIC_KEY.to_vec(),
        shares: vec![
            account_share(1, ShareType::Server, "server"),
            account_share(2, ShareType::Server, "server"),
            account_share(3, ShareType::UserDevice, "android"),
        ],
    };
    assert!(
        store
            .finish_session(KEYGEN, &outcome, at(2))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    store
        .insert_api_key(&NewApiKey {
            id: id(API_KEY),
            name: "operations".into(),
            key_hash: [7; 32],
            prefix: "mpc_op".into(),
            scope: ApiKeyScope::Operator,
            created_at: at(3),
            expires_at: Some(at(100_000)),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .touch_api_key(id(API_KEY), at(4), TimeDelta::seconds(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claim = store
        .claim_idempotency_key(&idempotency_key(), &[9; 32], at(5), TimeDelta::minutes(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claim, IdempotencyClaim::Claimed);
    store
        .complete_idempotency_key(&idempotency_key(), 201, "{\"ok\":true}")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .insert_audit(&NewAuditEntry {
            session_id: Some(KEYGEN),
            account_id: Some(ALICE),
            operation: "account.create".into(),
            user_id: Some("operations".into()),
            ip_address: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            user_agent: Some("curl/8".into()),
            request_body: Some(serde_json::json!({ "username": "alice" })),
            response_status: Some(201),
            created_at: at(6),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.close().await;
}

async fn write_coordinator(db: &Db) {
    let store = coordinator::open(db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let created = store
        .create_session(
            &sign_session(),
            &event(0xe1, SIGN, "session.created", at(40)),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, party) in ["server_party_1", "server_party_2"].into_iter().enumerate() {
        let mut join = ParticipantUpdate::new(
            SIGN,
            pid(party),
            ParticipantStatus::Invited,
            ParticipantStatus::Joined,
            at(11 + i as i64),
        );
        let byte = 0x11 * (i as u8 + 1);
        join.join_keys = Some((vec![byte; 32], vec![byte + 1; 40]));
        assert!(
            store
                .update_participant(&join)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        );
    }
    let mut start = SessionUpdate::new(
        SIGN,
        SessionStatus::Created,
        SessionStatus::InProgress,
        at(14),
    );
    start.participants = vec![(ParticipantStatus::Joined, ParticipantStatus::Computing)];
    assert!(
        store
            .update_session(&start)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .applied()
    );
    let sig = signature();
    let mut report = ParticipantUpdate::new(
        SIGN,
        pid("server_party_1"),
        ParticipantStatus::Computing,
        ParticipantStatus::Completed,
        at(15),
    );
    report.report = Some(PartyReport::Signature {
        r: sig.r,
        s: sig.s,
        v: sig.v,
    });
    assert!(
        store
            .update_participant(&report)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    let mut done = SessionUpdate::new(
        SIGN,
        SessionStatus::InProgress,
        SessionStatus::Completed,
        at(16),
    );
    done.signature = Some(sig);
    done.completed = true;
    done.event = Some(event(0xe2, SIGN, "session.completed", at(46)));
    assert!(
        store
            .update_session(&done)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .applied()
    );
    // The first event was published; the second waits in the outbox.
    store
        .delete_outbox(created)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut open = sign_session();
    open.id = OPEN;
    open.session_type = SessionType::Refresh;
    open.message_hash = None;
    open.created_at = at(20);
    open.expires_at = at(1_020);
    store
        .create_session(&open, &event(0xe3, OPEN, "session.created", at(20)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.close().await;
}

async fn write_router(db: &Db) {
    router::migrate(db).await.unwrap_or_else(|e| panic!("{e}"));
    let store = router::store(db);
    for env in [
        envelope(0x61, SIGN, "server_party_1", None, 1),
        envelope(0x62, SIGN, "server_party_2", Some("server_party_1"), 2),
        envelope(0x63, ENDED, "server_party_1", Some("server_party_2"), 1),
        envelope(0x64, PURGED, "server_party_1", Some("server_party_2"), 1),
    ] {
        let outcome = store.route(&env).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(outcome, RouteOutcome::Stored { .. }),
            "{outcome:?}"
        );
    }
    store
        .end_session(PURGED, at(600_010), at(16))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = store
        .sweep(at(17), Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.purged_sessions, vec![PURGED]);
    store
        .end_session(ENDED, at(600_010), at(18))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.close().await;
}

async fn write_party(db: &Db) {
    let store = party::open(db).await.unwrap_or_else(|e| panic!("{e}"));
    store
        .create_identity(&identity())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let key = alice_key();
    for (session, ty, share, start) in [
        (KEYGEN, SessionType::Keygen, 0x71, 1),
        (REFRESH, SessionType::Refresh, 0x72, 5),
        (PENDING, SessionType::Refresh, 0x73, 8),
    ] {
        let seen = store
            .begin_session(session, ty, &key, at(start))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, None);
        let stored = store
            .put_pending_share(&party_share(share, session, start + 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored, PendingOutcome::Pending);
        if session != PENDING {
            store
                .record_outcome(session, ty, &key, SessionOutcome::Completed, at(start + 2))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            store
                .finish_session(session, at(start + 2))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    store.ban(&ban()).await.unwrap_or_else(|e| panic!("{e}"));
    db.close().await;
}

/// A copy of the fixture in a fresh directory.
fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    for file in FILES {
        std::fs::copy(from.join(file), dir.path().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    dir
}

#[tokio::test]
async fn account_database_of_0_1_0_opens_and_works() {
    let dir = copy_fixture();
    let db = connect(dir.path(), FILES[0]).await;
    let store = account::open(&db).await.unwrap_or_else(|e| panic!("{e}"));

    let alice = store
        .get_account(ALICE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        alice,
        Some(AccountRecord {
            id: ALICE,
            username: Some("alice".into()),
            email: Some("alice@example.com".into()),
            public_key: Some(PUBLIC_KEY.to_vec()),
            threshold: THRESHOLD,
            status: AccountStatus::Active,
            keygen_session_id: Some(KEYGEN),
            failure_reason: None,
            created_at: at(0),
            updated_at: at(2),
        })
    );
    let shares = store
        .shares(ALICE, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let summary: Vec<_> = shares
        .iter()
        .map(|s| {
            (
                s.party_index,
                s.share_type,
                s.party_id.as_str(),
                s.is_active,
                s.created_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, ShareType::Server, "server_party_1", true, at(2)),
            (2, ShareType::Server, "server_party_2", true, at(2)),
            (3, ShareType::UserDevice, "server_party_3", true, at(2)),
        ]
    );
    assert!(
        shares
            .iter()
            .all(|s| s.session_id == Some(KEYGEN) && s.account_id == ALICE)
    );
    assert_eq!(
        store
            .get_session(KEYGEN)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        Some(AccountSessionRecord {
            session_id: KEYGEN,
            account_id: ALICE,
            session_type: SessionType::Keygen,
            status: AccountSessionStatus::Completed,
            recovery: None,
            failure_reason: None,
            blamed_party: None,
            created_at: at(1),
            updated_at: at(2),
        })
    );
    let key = store
        .find_api_key_by_hash(&[7; 32])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("api key"));
    assert_eq!(
        (
            key.id,
            key.scope,
            key.created_at,
            key.expires_at,
            key.last_used_at,
            key.revoked_at
        ),
        (
            id(API_KEY),
            ApiKeyScope::Operator,
            at(3),
            Some(at(100_000)),
            Some(at(4)),
            None
        )
    );
    assert_eq!(
        store
            .claim_idempotency_key(&idempotency_key(), &[9; 32], at(50), TimeDelta::minutes(5))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        IdempotencyClaim::Completed {
            request_hash: [9; 32],
            status: 201,
            body: "{\"ok\":true}".into()
        }
    );
    let audit = store
        .query_audit(&AuditFilter {
            status_min: None,
            status_max: None,
            operation: None,
            session_id: None,
            account_id: Some(ALICE),
            since: Some(at(6)),
            until: Some(at(6)),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].ip_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(
        audit[0].request_body,
        Some(serde_json::json!({ "username": "alice" }))
    );

    // Writes go on from where the old version left off.
    assert!(
        store
            .transition_account(
                BOB,
                &[AccountStatus::Pending],
                AccountStatus::Failed,
                at(60)
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    let (pending, total) = store
        .list_accounts(Some(AccountStatus::Active), 10, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((pending.len(), total), (1, 1));
    db.close().await;
}

#[tokio::test]
async fn coordinator_database_of_0_1_0_opens_and_works() {
    let dir = copy_fixture();
    let db = connect(dir.path(), FILES[1]).await;
    let store = coordinator::open(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let session = store
        .session(SIGN)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("session"));
    let written = sign_session();
    assert_eq!(
        (
            session.session_type,
            session.status,
            session.threshold,
            &session.key_id
        ),
        (
            SessionType::Sign,
            SessionStatus::Completed,
            THRESHOLD,
            &written.key_id
        )
    );
    assert_eq!(
        (
            &session.message_hash,
            &session.public_key,
            &session.signature
        ),
        (
            &written.message_hash,
            &written.public_key,
            &Some(signature())
        )
    );
    assert_eq!(
        (
            session.created_at,
            session.expires_at,
            session.updated_at,
            session.completed_at
        ),
        (at(10), at(600_010), at(16), Some(at(16)))
    );
    let parties: Vec<_> = session
        .participants
        .iter()
        .map(|p| {
            (
                p.party_id.as_str(),
                p.party_index,
                p.status,
                p.joined_at,
                p.updated_at,
            )
        })
        .collect();
    assert_eq!(
        parties,
        vec![
            (
                "server_party_1",
                1,
                ParticipantStatus::Completed,
                Some(at(11)),
                at(15)
            ),
            (
                "server_party_2",
                2,
                ParticipantStatus::Computing,
                Some(at(12)),
                at(14)
            ),
            (
                "server_party_3",
                3,
                ParticipantStatus::Invited,
                None,
                at(10)
            ),
        ]
    );
    let first = &session.participants[0];
    assert_eq!(first.identity_public_key, Some(vec![0x11; 32]));
    assert_eq!(first.session_key, Some(vec![0x12; 40]));
    let sig = signature();
    assert_eq!(
        first.report,
        Some(PartyReport::Signature {
            r: sig.r,
            s: sig.s,
            v: sig.v
        })
    );
    assert_eq!(
        session.participants[2].device_type.as_deref(),
        Some("android")
    );

    assert_eq!(
        store
            .count_active_sessions()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        1
    );
    assert_eq!(
        store
            .expired_sessions(at(2_000), 10)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        vec![OPEN]
    );
    let claimed = store
        .claim_outbox(at(50), at(30_050), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed: Vec<_> = claimed
        .iter()
        .map(|r| (r.event_id, r.session_id, r.routing_key.as_str(), r.attempts))
        .collect();
    assert_eq!(
        claimed,
        vec![
            (id(0xe2), SIGN, "session.completed", 1),
            (id(0xe3), OPEN, "session.created", 1),
        ]
    );

    // Writes go on: the open session expires.
    let mut expire = SessionUpdate::new(
        OPEN,
        SessionStatus::Created,
        SessionStatus::Expired,
        at(2_000),
    );
    expire.completed = true;
    expire.participants = vec![(ParticipantStatus::Invited, ParticipantStatus::Failed)];
    assert!(
        store
            .update_session(&expire)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .applied()
    );
    let open = store
        .session(OPEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("session"));
    assert_eq!(
        (open.status, open.completed_at),
        (SessionStatus::Expired, Some(at(2_000)))
    );
    assert!(
        open.participants
            .iter()
            .all(|p| p.status == ParticipantStatus::Failed)
    );
    assert_eq!(
        store
            .count_active_sessions()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    db.close().await;
}

async fn mailbox(
    store: &dyn router::RouterStore,
    session: SessionId,
    who: &str,
) -> Vec<(u64, MessageId, Vec<u8>)> {
    match store
        .fetch(&Mailbox::new(session, pid(who)), 0, 100, u64::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        FetchOutcome::Envelopes {
            envelopes,
            has_more,
        } => {
            assert!(!has_more);
            envelopes
                .into_iter()
                .map(|e| {
                    assert_eq!(e.created_at, at(13));
                    (e.seq, e.message_id, e.payload)
                })
                .collect()
        }
        FetchOutcome::SessionPurged => panic!("purged"),
    }
}

#[tokio::test]
async fn router_database_of_0_1_0_opens_and_works() {
    let dir = copy_fixture();
    let db = connect(dir.path(), FILES[2]).await;
    router::migrate(&db).await.unwrap_or_else(|e| panic!("{e}"));
    let store = router::store(&db);

    let m1 = envelope(0x61, SIGN, "server_party_1", None, 1);
    let m2 = envelope(0x62, SIGN, "server_party_2", Some("server_party_1"), 2);
    assert_eq!(
        mailbox(store.as_ref(), SIGN, "server_party_1").await,
        vec![(1, m2.message_id, m2.payload.clone())]
    );
    for who in ["server_party_2", "server_party_3"] {
        assert_eq!(
            mailbox(store.as_ref(), SIGN, who).await,
            vec![(1, m1.message_id, m1.payload.clone())]
        );
    }
    assert_eq!(
        store.route(&m1).await.unwrap_or_else(|e| panic!("{e}")),
        RouteOutcome::Duplicate { recipients: 2 }
    );
    // Sequence numbers go on from the old rows.
    assert_eq!(
        store
            .route(&envelope(0x65, SIGN, "server_party_3", None, 3))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        RouteOutcome::Stored {
            deliveries: vec![(pid("server_party_1"), 2), (pid("server_party_2"), 2)]
        }
    );
    assert_eq!(
        store
            .route(&envelope(
                0x66,
                ENDED,
                "server_party_2",
                Some("server_party_1"),
                2
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        RouteOutcome::SessionEnded
    );
    let m3 = envelope(0x63, ENDED, "server_party_1", Some("server_party_2"), 1);
    assert_eq!(
        mailbox(store.as_ref(), ENDED, "server_party_2").await,
        vec![(1, m3.message_id, m3.payload.clone())]
    );
    assert_eq!(
        store
            .fetch(
                &Mailbox::new(PURGED, pid("server_party_2")),
                0,
                100,
                u64::MAX
            )
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        FetchOutcome::SessionPurged
    );
    // The sweep reads the old deadlines and end times: the ended session goes after its grace,
    // the live one only after its deadline, the old tombstone with them.
    let report = store
        .sweep(at(18) + TimeDelta::seconds(60), Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.purged_sessions, report.deleted_messages),
        (vec![ENDED], 1)
    );
    let report = store
        .sweep(at(600_010) + TimeDelta::hours(2), Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            report.purged_sessions,
            report.deleted_messages,
            report.forgotten_sessions
        ),
        (vec![SIGN], 3, 3)
    );
    db.close().await;
}

#[tokio::test]
async fn party_database_of_0_1_0_opens_and_works() {
    let dir = copy_fixture();
    let db = connect(dir.path(), FILES[3]).await;
    let store = party::open(&db).await.unwrap_or_else(|e| panic!("{e}"));
    let key = alice_key();

    assert_eq!(
        store.identity().await.unwrap_or_else(|e| panic!("{e}")),
        Some(identity())
    );
    let record =
        |n: u128, session, status, created: i64, activated: Option<i64>, retired: Option<i64>| {
            let new = party_share(n, session, created);
            let live = status != ShareStatus::Retired;
            ShareRecord {
                id: new.id,
                key_id: new.key_id,
                party_id: new.party_id,
                party_index: new.party_index,
                threshold: new.threshold,
                public_key: new.public_key,
                session_id: new.session_id,
                status,
                sealed_share: live.then_some(new.sealed_share),
                kek_id: live.then_some(new.kek_id),
                created_at: at(created),
                updated_at: at(retired.or(activated).unwrap_or(created)),
                activated_at: activated.map(at),
                retired_at: retired.map(at),
            }
        };
    let shares = store.shares(&key).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        shares,
        vec![
            record(0x71, KEYGEN, ShareStatus::Retired, 2, Some(3), Some(7)),
            record(0x72, REFRESH, ShareStatus::Active, 6, Some(7), None),
            record(0x73, PENDING, ShareStatus::Pending, 9, None, None),
        ]
    );
    assert_eq!(
        store
            .active_share(&key)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        Some(shares[1].clone())
    );
    assert_eq!(
        store.bans(&key).await.unwrap_or_else(|e| panic!("{e}")),
        vec![ban()]
    );
    let seen = store
        .begin_session(PENDING, SessionType::Refresh, &key, at(100))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the session was begun before"));
    assert_eq!(
        (
            seen.session_type,
            seen.local_state,
            seen.outcome,
            seen.created_at,
            seen.updated_at
        ),
        (
            SessionType::Refresh,
            LocalState::Running,
            None,
            at(8),
            at(8)
        )
    );
    let done = store
        .begin_session(REFRESH, SessionType::Refresh, &key, at(100))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the session was begun before"));
    assert_eq!(
        (done.local_state, done.outcome, done.updated_at),
        (LocalState::Finished, Some(SessionOutcome::Completed), at(7))
    );

    // Writes go on: the pending share's session completes, retiring the active one.
    assert_eq!(
        store
            .record_outcome(
                PENDING,
                SessionType::Refresh,
                &key,
                SessionOutcome::Completed,
                at(101)
            )
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        OutcomeEffect {
            activated: Some(id(0x73)),
            retired: Some(id(0x72)),
            deleted: 0,
            outcome: Some(SessionOutcome::Completed),
        }
    );
    assert!(
        store
            .reseal_share(id(0x73), "kek-1", b"resealed", "kek-2", at(102))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    let active = store
        .active_share(&key)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("active share"));
    assert_eq!(
        (
            active.id,
            active.sealed_share.as_deref(),
            active.kek_id.as_deref(),
            active.updated_at
        ),
        (id(0x73), Some(&b"resealed"[..]), Some("kek-2"), at(102))
    );
    assert!(
        store
            .clear_ban(&key, &pid("server_party_3"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    db.close().await;
}
