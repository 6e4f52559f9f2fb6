//! The account store suite, run on SQLite and PostgreSQL (`backend_tests!`).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{AccountId, PartyId, SessionId, SessionType, Threshold};

use super::*;
use crate::testing::TestDb;

fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

/// Millisecond precision: what both backends keep.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

async fn store(t: &TestDb) -> Arc<dyn AccountStore> {
    open(&t.db).await.unwrap()
}

fn new_account(username: Option<&str>, email: Option<&str>) -> NewAccount {
    NewAccount {
        id: AccountId::new_random(),
        username: username.map(str::to_owned),
        email: email.map(str::to_owned),
        threshold: Threshold::new(2, 3).unwrap(),
        created_at: now(),
    }
}

fn share(party: &str, index: u16, share_type: ShareType) -> NewShare {
    NewShare {
        party_id: pid(party),
        party_index: index,
        share_type,
        device_type: Some(
            if share_type == ShareType::Server {
                "server"
            } else {
                "android"
            }
            .into(),
        ),
        storage_location: Some(format!("{party} (test)")),
    }
}

fn guide_shares() -> Vec<NewShare> {
    vec![
        share("user_device_1", 0, ShareType::UserDevice),
        share("server_party_1", 1, ShareType::Server),
        share("server_party_2", 2, ShareType::Server),
    ]
}

async fn session(s: &dyn AccountStore, account: AccountId, ty: SessionType) -> SessionId {
    let id = SessionId::new_random();
    s.record_session(&NewAccountSession {
        session_id: id,
        account_id: account,
        session_type: ty,
        recovery: None,
        created_at: now(),
    })
    .await
    .unwrap();
    id
}

/// A keygen that completed: an active account with the guide's three shares.
async fn active_account(s: &dyn AccountStore) -> (AccountId, SessionId) {
    let account = new_account(None, None);
    s.create_account(&account).await.unwrap();
    let keygen = session(s, account.id, SessionType::Keygen).await;
    let outcome = SessionOutcome::KeygenCompleted {
        public_key: vec![4; 65],
        shares: guide_shares(),
    };
    assert!(s.finish_session(keygen, &outcome, now()).await.unwrap());
    (account.id, keygen)
}

async fn keygen_activates_the_account_once(t: TestDb) {
    let s = store(&t).await;
    let account = new_account(Some("alice"), Some("alice@example.com"));
    s.create_account(&account).await.unwrap();
    let got = s.get_account(account.id).await.unwrap().unwrap();
    assert_eq!(got.status, AccountStatus::Pending);
    assert_eq!(got.public_key, None);
    assert_eq!(got.username.as_deref(), Some("alice"));
    assert_eq!(got.threshold, Threshold::new(2, 3).unwrap());
    assert_eq!(got.created_at, account.created_at);

    let keygen = session(&*s, account.id, SessionType::Keygen).await;
    let got = s.get_account(account.id).await.unwrap().unwrap();
    assert_eq!(got.keygen_session_id, Some(keygen));
    let recorded = s.get_session(keygen).await.unwrap().unwrap();
    assert_eq!(recorded.status, AccountSessionStatus::Pending);
    assert_eq!(recorded.account_id, account.id);
    assert_eq!(recorded.session_type, SessionType::Keygen);

    let outcome = SessionOutcome::KeygenCompleted {
        public_key: vec![4; 65],
        shares: guide_shares(),
    };
    assert!(s.finish_session(keygen, &outcome, now()).await.unwrap());
    // The same outcome again (a redelivered event) changes nothing.
    assert!(!s.finish_session(keygen, &outcome, now()).await.unwrap());
    let failed = SessionOutcome::Failed {
        reason: "late".into(),
        blamed_party: None,
    };
    assert!(!s.finish_session(keygen, &failed, now()).await.unwrap());

    let got = s.get_account(account.id).await.unwrap().unwrap();
    assert_eq!(got.status, AccountStatus::Active);
    assert_eq!(got.public_key, Some(vec![4; 65]));
    let shares = s.shares(account.id, false).await.unwrap();
    assert_eq!(shares.len(), 3, "one row per party, not per delivery");
    let parties: Vec<(&str, u16, ShareType)> = shares
        .iter()
        .map(|s| (s.party_id.as_str(), s.party_index, s.share_type))
        .collect();
    assert_eq!(
        parties,
        [
            ("user_device_1", 0, ShareType::UserDevice),
            ("server_party_1", 1, ShareType::Server),
            ("server_party_2", 2, ShareType::Server),
        ]
    );
    assert!(
        shares
            .iter()
            .all(|s| s.is_active && s.session_id == Some(keygen))
    );
    assert_eq!(
        shares[1].storage_location.as_deref(),
        Some("server_party_1 (test)")
    );
    assert_eq!(
        s.get_session(keygen).await.unwrap().unwrap().status,
        AccountSessionStatus::Completed
    );
}
crate::backend_tests!(
    keygen_activates_the_account_once,
    keygen_activates_the_account_once
);

async fn usernames_and_emails_are_unique_when_given(t: TestDb) {
    let s = store(&t).await;
    s.create_account(&new_account(Some("bob"), Some("bob@example.com")))
        .await
        .unwrap();
    let err = s
        .create_account(&new_account(Some("bob"), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m == "username is taken"),
        "{err}"
    );
    let err = s
        .create_account(&new_account(Some("robert"), Some("bob@example.com")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m == "email is taken"),
        "{err}"
    );
    // Accounts without a username or email do not collide with each other.
    s.create_account(&new_account(None, None)).await.unwrap();
    s.create_account(&new_account(None, None)).await.unwrap();
    let (_, total) = s.list_accounts(None, 10, 0).await.unwrap();
    assert_eq!(total, 3);
}
crate::backend_tests!(
    usernames_and_emails_are_unique_when_given,
    usernames_and_emails_are_unique_when_given
);

async fn failed_keygen_records_why(t: TestDb) {
    let s = store(&t).await;
    let account = new_account(None, None);
    s.create_account(&account).await.unwrap();
    let keygen = session(&*s, account.id, SessionType::Keygen).await;
    // An account with a session is not "unstarted": it stays.
    s.delete_unstarted_account(account.id).await.unwrap();
    assert!(s.get_account(account.id).await.unwrap().is_some());

    let outcome = SessionOutcome::Failed {
        reason: "keygen failed: party server_party_2 sent an invalid message".into(),
        blamed_party: Some(pid("server_party_2")),
    };
    assert!(s.finish_session(keygen, &outcome, now()).await.unwrap());
    let got = s.get_account(account.id).await.unwrap().unwrap();
    assert_eq!(got.status, AccountStatus::Failed);
    assert_eq!(
        got.failure_reason.as_deref(),
        Some("keygen failed: party server_party_2 sent an invalid message")
    );
    assert!(s.shares(account.id, true).await.unwrap().is_empty());
    let recorded = s.get_session(keygen).await.unwrap().unwrap();
    assert_eq!(recorded.status, AccountSessionStatus::Failed);
    assert_eq!(recorded.blamed_party, Some(pid("server_party_2")));

    // Expiry of another keygen.
    let other = new_account(None, None);
    s.create_account(&other).await.unwrap();
    let keygen = session(&*s, other.id, SessionType::Keygen).await;
    let expired = SessionOutcome::Expired {
        reason: "keygen failed: timeout".into(),
    };
    assert!(s.finish_session(keygen, &expired, now()).await.unwrap());
    let got = s.get_account(other.id).await.unwrap().unwrap();
    assert_eq!(got.status, AccountStatus::Failed);
    assert_eq!(
        got.failure_reason.as_deref(),
        Some("keygen failed: timeout")
    );

    // An account that never got a session is removed.
    let unstarted = new_account(Some("carol"), None);
    s.create_account(&unstarted).await.unwrap();
    s.delete_unstarted_account(unstarted.id).await.unwrap();
    assert!(s.get_account(unstarted.id).await.unwrap().is_none());
    // … which frees its username.
    s.create_account(&new_account(Some("carol"), None))
        .await
        .unwrap();
}
crate::backend_tests!(failed_keygen_records_why, failed_keygen_records_why);

async fn sign_outcomes_leave_the_account_alone(t: TestDb) {
    let s = store(&t).await;
    let (account, _) = active_account(&*s).await;
    let sign = session(&*s, account, SessionType::Sign).await;
    let failed = SessionOutcome::Failed {
        reason: "sign failed: aborted".into(),
        blamed_party: None,
    };
    assert!(s.finish_session(sign, &failed, now()).await.unwrap());
    let got = s.get_account(account).await.unwrap().unwrap();
    assert_eq!(got.status, AccountStatus::Active);
    assert_eq!(got.failure_reason, None);
    assert_eq!(s.shares(account, false).await.unwrap().len(), 3);
    assert!(
        s.finish_session(SessionId::new_random(), &failed, now())
            .await
            .is_ok_and(|b| !b)
    );
}
crate::backend_tests!(
    sign_outcomes_leave_the_account_alone,
    sign_outcomes_leave_the_account_alone
);

async fn pending_sessions_of_one_account(t: TestDb) {
    let s = store(&t).await;
    let (account, _) = active_account(&*s).await;
    let (other, _) = active_account(&*s).await;
    let first = session(&*s, account, SessionType::Sign).await;
    let done = session(&*s, account, SessionType::Sign).await;
    let second = session(&*s, account, SessionType::Refresh).await;
    let _elsewhere = session(&*s, other, SessionType::Sign).await;
    let failed = SessionOutcome::Failed {
        reason: "sign failed: aborted".into(),
        blamed_party: None,
    };
    assert!(s.finish_session(done, &failed, now()).await.unwrap());
    let pending: Vec<SessionId> = s
        .pending_sessions_of_account(account)
        .await
        .unwrap()
        .iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.contains(&first) && pending.contains(&second));
    assert!(
        s.pending_sessions_of_account(AccountId::new_random())
            .await
            .unwrap()
            .is_empty()
    );
}
crate::backend_tests!(
    pending_sessions_of_one_account,
    pending_sessions_of_one_account
);

async fn recovery_replaces_the_lost_share_at_its_index(t: TestDb) {
    let s = store(&t).await;
    let (account, _) = active_account(&*s).await;
    let recovery = SessionId::new_random();
    s.record_session(&NewAccountSession {
        session_id: recovery,
        account_id: account,
        session_type: SessionType::Recovery,
        recovery: Some(RecoveryPlan {
            lost_party_id: pid("user_device_1"),
            new_party_id: pid("user_device_2"),
            new_device_type: Some("ios".into()),
        }),
        created_at: now(),
    })
    .await
    .unwrap();
    let recorded = s.get_session(recovery).await.unwrap().unwrap();
    assert_eq!(
        recorded.recovery.as_ref().map(|r| r.new_party_id.as_str()),
        Some("user_device_2")
    );
    let mut new_share = share("user_device_2", 0, ShareType::UserDevice);
    new_share.device_type = Some("ios".into());
    let outcome = SessionOutcome::RecoveryCompleted { new_share };
    assert!(s.finish_session(recovery, &outcome, now()).await.unwrap());
    assert!(!s.finish_session(recovery, &outcome, now()).await.unwrap());

    let active = s.shares(account, false).await.unwrap();
    let names: Vec<(&str, u16)> = active
        .iter()
        .map(|s| (s.party_id.as_str(), s.party_index))
        .collect();
    assert_eq!(
        names,
        [
            ("user_device_2", 0),
            ("server_party_1", 1),
            ("server_party_2", 2)
        ]
    );
    assert_eq!(active[0].session_id, Some(recovery));
    let all = s.shares(account, true).await.unwrap();
    assert_eq!(all.len(), 4);
    let lost = all
        .iter()
        .find(|s| s.party_id.as_str() == "user_device_1")
        .unwrap();
    assert!(!lost.is_active);
    // The key is unchanged.
    let got = s.get_account(account).await.unwrap().unwrap();
    assert_eq!(got.public_key, Some(vec![4; 65]));

    // Recovering a party onto its own id (a reinstalled device) works too.
    let again = SessionId::new_random();
    s.record_session(&NewAccountSession {
        session_id: again,
        account_id: account,
        session_type: SessionType::Recovery,
        recovery: Some(RecoveryPlan {
            lost_party_id: pid("server_party_1"),
            new_party_id: pid("server_party_1"),
            new_device_type: Some("server".into()),
        }),
        created_at: now(),
    })
    .await
    .unwrap();
    let outcome = SessionOutcome::RecoveryCompleted {
        new_share: share("server_party_1", 1, ShareType::Server),
    };
    assert!(s.finish_session(again, &outcome, now()).await.unwrap());
    assert_eq!(s.shares(account, false).await.unwrap().len(), 3);
    assert_eq!(s.shares(account, true).await.unwrap().len(), 5);
}
crate::backend_tests!(
    recovery_replaces_the_lost_share_at_its_index,
    recovery_replaces_the_lost_share_at_its_index
);

async fn concurrent_outcomes_apply_once(t: TestDb) {
    let s = store(&t).await;
    let account = new_account(None, None);
    s.create_account(&account).await.unwrap();
    let keygen = session(&*s, account.id, SessionType::Keygen).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = SessionOutcome::KeygenCompleted {
                public_key: vec![4; 65],
                shares: guide_shares(),
            };
            s.finish_session(keygen, &outcome, now()).await.unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(s.shares(account.id, true).await.unwrap().len(), 3);
}
crate::backend_tests!(
    concurrent_outcomes_apply_once,
    concurrent_outcomes_apply_once
);

async fn suspend_and_activate_are_compare_and_set(t: TestDb) {
    let s = store(&t).await;
    let (account, _) = active_account(&*s).await;
    let suspend = |s: Arc<dyn AccountStore>| async move {
        s.transition_account(
            account,
            &[AccountStatus::Active],
            AccountStatus::Suspended,
            now(),
        )
        .await
        .unwrap()
    };
    assert!(suspend(s.clone()).await);
    assert!(!suspend(s.clone()).await, "already suspended");
    assert_eq!(
        s.get_account(account).await.unwrap().unwrap().status,
        AccountStatus::Suspended
    );
    assert!(
        s.transition_account(
            account,
            &[AccountStatus::Suspended],
            AccountStatus::Active,
            now()
        )
        .await
        .unwrap()
    );
    assert!(
        !s.transition_account(
            AccountId::new_random(),
            &[AccountStatus::Active],
            AccountStatus::Suspended,
            now()
        )
        .await
        .unwrap()
    );

    let pending = new_account(None, None);
    s.create_account(&pending).await.unwrap();
    let mut counts = s.count_accounts_by_status().await.unwrap();
    counts.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        counts,
        [(AccountStatus::Active, 1), (AccountStatus::Pending, 1)]
    );
    let (active, total) = s
        .list_accounts(Some(AccountStatus::Active), 10, 0)
        .await
        .unwrap();
    assert_eq!((active.len(), total), (1, 1));
    assert_eq!(active[0].id, account);
}
crate::backend_tests!(
    suspend_and_activate_are_compare_and_set,
    suspend_and_activate_are_compare_and_set
);

async fn accounts_are_listed_in_pages(t: TestDb) {
    let s = store(&t).await;
    let mut ids = Vec::new();
    for i in 0..5i64 {
        let mut a = new_account(None, None);
        a.created_at = now() + TimeDelta::milliseconds(i);
        s.create_account(&a).await.unwrap();
        ids.push(a.id);
    }
    let (first, total) = s.list_accounts(None, 2, 0).await.unwrap();
    let (second, _) = s.list_accounts(None, 2, 2).await.unwrap();
    let (last, _) = s.list_accounts(None, 2, 4).await.unwrap();
    assert_eq!(total, 5);
    let listed: Vec<AccountId> = first
        .iter()
        .chain(&second)
        .chain(&last)
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, ids);
    let (beyond, total) = s.list_accounts(None, 2, 10).await.unwrap();
    assert!(beyond.is_empty());
    assert_eq!(total, 5);
}
crate::backend_tests!(accounts_are_listed_in_pages, accounts_are_listed_in_pages);

async fn api_keys_are_found_by_hash_and_revoked_once(t: TestDb) {
    let s = store(&t).await;
    let key = NewApiKey {
        id: uuid::Uuid::new_v4(),
        name: "wallet backend".into(),
        key_hash: [7; 32],
        prefix: "mpc_abcd".into(),
        scope: ApiKeyScope::Operator,
        created_at: now(),
        expires_at: Some(now() + TimeDelta::days(90)),
    };
    s.insert_api_key(&key).await.unwrap();
    let found = s.find_api_key_by_hash(&[7; 32]).await.unwrap().unwrap();
    assert_eq!(found.id, key.id);
    assert_eq!(found.scope, ApiKeyScope::Operator);
    assert_eq!(found.expires_at, key.expires_at);
    assert_eq!(found.revoked_at, None);
    assert!(s.find_api_key_by_hash(&[8; 32]).await.unwrap().is_none());
    // The same hash twice is refused.
    let mut dup = key.clone();
    dup.id = uuid::Uuid::new_v4();
    assert!(
        s.insert_api_key(&dup)
            .await
            .unwrap_err()
            .is_unique_violation()
    );

    let t0 = now();
    s.touch_api_key(key.id, t0, TimeDelta::seconds(60))
        .await
        .unwrap();
    s.touch_api_key(key.id, t0 + TimeDelta::seconds(1), TimeDelta::seconds(60))
        .await
        .unwrap();
    let found = s.find_api_key_by_hash(&[7; 32]).await.unwrap().unwrap();
    assert_eq!(found.last_used_at, Some(t0), "one write per resolution");

    let revoked = s.revoke_api_key(key.id, t0).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t0));
    let again = s
        .revoke_api_key(key.id, t0 + TimeDelta::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(t0), "the first revocation stays");
    assert!(
        s.revoke_api_key(uuid::Uuid::new_v4(), t0)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.list_api_keys().await.unwrap().len(), 1);
    assert!(!format!("{key:?}").contains("7, 7"), "Debug hides the hash");
}
crate::backend_tests!(
    api_keys_are_found_by_hash_and_revoked_once,
    api_keys_are_found_by_hash_and_revoked_once
);

async fn idempotency_keys_replay_and_expire(t: TestDb) {
    let s = store(&t).await;
    let key = IdempotencyKey {
        api_key_id: "bootstrap".into(),
        route: "keygen".into(),
        key: "retry-1".into(),
    };
    let stale = TimeDelta::seconds(60);
    let t0 = now();
    assert_eq!(
        s.claim_idempotency_key(&key, &[1; 32], t0, stale)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        s.claim_idempotency_key(&key, &[1; 32], t0, stale)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress {
            request_hash: [1; 32]
        }
    );
    s.complete_idempotency_key(&key, 201, "{\"session_id\":\"x\"}")
        .await
        .unwrap();
    assert_eq!(
        s.claim_idempotency_key(&key, &[2; 32], t0, stale)
            .await
            .unwrap(),
        IdempotencyClaim::Completed {
            request_hash: [1; 32],
            status: 201,
            body: "{\"session_id\":\"x\"}".into()
        }
    );
    // Keys are per caller and per route.
    let other = IdempotencyKey {
        route: "sign".into(),
        ..key.clone()
    };
    assert_eq!(
        s.claim_idempotency_key(&other, &[1; 32], t0, stale)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    // A released claim can be taken again.
    s.release_idempotency_key(&other).await.unwrap();
    assert_eq!(
        s.claim_idempotency_key(&other, &[3; 32], t0, stale)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    // A claim whose process died is taken over once it is stale.
    assert_eq!(
        s.claim_idempotency_key(&other, &[4; 32], t0 + TimeDelta::seconds(61), stale)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        s.claim_idempotency_key(&other, &[5; 32], t0 + TimeDelta::seconds(62), stale)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress {
            request_hash: [4; 32]
        }
    );
    assert_eq!(
        s.purge_idempotency_keys(t0 + TimeDelta::seconds(1))
            .await
            .unwrap(),
        1,
        "only the completed key is older"
    );
}
crate::backend_tests!(
    idempotency_keys_replay_and_expire,
    idempotency_keys_replay_and_expire
);

async fn audit_log_filters(t: TestDb) {
    let s = store(&t).await;
    let session = SessionId::new_random();
    let account = AccountId::new_random();
    let t0 = now() - TimeDelta::hours(2);
    let entry =
        |op: &str, status: u16, at: DateTime<Utc>, session: Option<SessionId>| NewAuditEntry {
            session_id: session,
            account_id: Some(account),
            operation: op.into(),
            user_id: Some("bootstrap".into()),
            ip_address: Some("127.0.0.1".parse().unwrap()),
            user_agent: Some("curl/8".into()),
            request_body: Some(serde_json::json!({"threshold_n": 3, "share_data": "[REDACTED]"})),
            response_status: Some(status),
            created_at: at,
        };
    let old = s
        .insert_audit(&entry("keygen", 400, t0, None))
        .await
        .unwrap();
    let ok = s
        .insert_audit(&entry("keygen", 201, now(), Some(session)))
        .await
        .unwrap();
    let denied = s
        .insert_audit(&entry("sign", 401, now(), None))
        .await
        .unwrap();
    assert!(old < ok && ok < denied);

    let all = s
        .query_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        [denied, ok, old]
    );
    let e = &all[1];
    assert_eq!(e.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(e.user_agent.as_deref(), Some("curl/8"));
    assert_eq!(e.session_id, Some(session));
    assert_eq!(e.account_id, Some(account));
    assert_eq!(e.request_body.as_ref().unwrap()["threshold_n"], 3);

    // The guide's query: failures in the last hour.
    let recent_failures = s
        .query_audit(&AuditFilter {
            status_min: Some(400),
            since: Some(now() - TimeDelta::hours(1)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recent_failures.iter().map(|e| e.id).collect::<Vec<_>>(),
        [denied]
    );
    let by_op = s
        .query_audit(&AuditFilter {
            operation: Some("keygen".into()),
            status_max: Some(299),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_op.iter().map(|e| e.id).collect::<Vec<_>>(), [ok]);
    let by_session = s
        .query_audit(&AuditFilter {
            session_id: Some(session),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_session.iter().map(|e| e.id).collect::<Vec<_>>(), [ok]);
    let page = s
        .query_audit(&AuditFilter {
            before_id: Some(denied),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [ok]);
    let until = s
        .query_audit(&AuditFilter {
            until: Some(t0),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(until.iter().map(|e| e.id).collect::<Vec<_>>(), [old]);
}
crate::backend_tests!(audit_log_filters, audit_log_filters);
