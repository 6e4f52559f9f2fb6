//! The operator console's queries (account search, session listing and counts), on SQLite and
//! PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{AccountId, PartyId, SessionId, SessionType, Threshold};

use super::*;
use crate::testing::TestDb;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

async fn store(t: &TestDb) -> Arc<dyn AccountStore> {
    open(&t.db).await.unwrap()
}

/// The public key of private key 1 (the generator): address 0x7e5f…5bdf.
fn generator_key() -> Vec<u8> {
    let hex = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
               483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
const GENERATOR_ADDRESS: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";

async fn account(
    s: &dyn AccountStore,
    username: Option<&str>,
    email: Option<&str>,
    at: DateTime<Utc>,
) -> AccountId {
    let id = AccountId::new_random();
    s.create_account(&NewAccount {
        id,
        username: username.map(str::to_owned),
        email: email.map(str::to_owned),
        threshold: Threshold::new(2, 3).unwrap(),
        created_at: at,
    })
    .await
    .unwrap();
    id
}

async fn session(
    s: &dyn AccountStore,
    account: AccountId,
    ty: SessionType,
    at: DateTime<Utc>,
) -> SessionId {
    let id = SessionId::new_random();
    s.record_session(&NewAccountSession {
        session_id: id,
        account_id: account,
        session_type: ty,
        recovery: None,
        created_at: at,
    })
    .await
    .unwrap();
    id
}

async fn complete_keygen(s: &dyn AccountStore, session: SessionId, public_key: Vec<u8>) {
    let party = |p: &str, i: u16| NewShare {
        party_id: PartyId::parse(p).unwrap(),
        party_index: i,
        share_type: ShareType::Server,
        device_type: Some("server".into()),
        storage_location: None,
    };
    let outcome = SessionOutcome::KeygenCompleted {
        public_key,
        shares: vec![party("server_party_1", 0), party("server_party_2", 1)],
    };
    assert!(s.finish_session(session, &outcome, now()).await.unwrap());
}

async fn search(s: &dyn AccountStore, text: &str) -> (Vec<AccountId>, u64) {
    let (found, total) = s
        .search_accounts(&AccountSearch {
            text: Some(text.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    (found.iter().map(|a| a.id).collect(), total)
}

async fn accounts_are_found_by_id_name_email_and_address(t: TestDb) {
    let s = store(&t).await;
    let t0 = now() - TimeDelta::minutes(10);
    let alice = account(&*s, Some("Alice_01"), Some("alice@example.com"), t0).await;
    let bob = account(
        &*s,
        Some("bob"),
        Some("bob@example.org"),
        t0 + TimeDelta::seconds(1),
    )
    .await;
    let carol = account(&*s, None, None, t0 + TimeDelta::seconds(2)).await;
    let keygen = session(&*s, carol, SessionType::Keygen, t0).await;
    complete_keygen(&*s, keygen, generator_key()).await;

    assert_eq!(search(&*s, "").await, (vec![alice, bob, carol], 3));
    assert_eq!(search(&*s, &alice.to_string()).await, (vec![alice], 1));
    // Part of a name or an email, in any case.
    assert_eq!(search(&*s, "ALICE").await, (vec![alice], 1));
    assert_eq!(search(&*s, "example").await, (vec![alice, bob], 2));
    assert_eq!(search(&*s, "@example.org").await, (vec![bob], 1));
    // `_` and `%` are literal, not wildcards.
    assert_eq!(search(&*s, "alic__01").await.1, 0);
    assert_eq!(search(&*s, "alice%01").await.1, 0);
    assert_eq!(search(&*s, "%").await.1, 0);
    assert_eq!(search(&*s, "e_01").await, (vec![alice], 1));
    // The address: checksummed, lower case, without 0x.
    assert_eq!(search(&*s, GENERATOR_ADDRESS).await, (vec![carol], 1));
    let bare = GENERATOR_ADDRESS.trim_start_matches("0x").to_lowercase();
    assert_eq!(search(&*s, &bare).await, (vec![carol], 1));
    assert_eq!(
        search(&*s, "0x0000000000000000000000000000000000000000")
            .await
            .1,
        0
    );

    // Status narrows; pages follow creation order with the full total.
    let (active, total) = s
        .search_accounts(&AccountSearch {
            status: Some(AccountStatus::Active),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((active.len(), total, active[0].id), (1, 1, carol));
    let (page, total) = s
        .search_accounts(&AccountSearch {
            limit: 1,
            offset: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page[0].id, total), (bob, 3));
}
crate::backend_tests!(
    accounts_are_found_by_id_name_email_and_address,
    accounts_are_found_by_id_name_email_and_address
);

/// A database whose keys were stored before the address column existed: opening the store
/// fills the addresses in, so those accounts are found by address too.
async fn addresses_of_existing_accounts_are_filled_in(t: TestDb) {
    let s = store(&t).await;
    let a = account(&*s, None, None, now()).await;
    let keygen = session(&*s, a, SessionType::Keygen, now()).await;
    complete_keygen(&*s, keygen, generator_key()).await;
    let pending = account(&*s, None, None, now()).await;
    let erase = "UPDATE accounts SET ethereum_address = NULL";
    match &t.db {
        crate::Db::Postgres(p) => sqlx::query(erase).execute(p).await.map(|_| ()),
        crate::Db::Sqlite(p) => sqlx::query(erase).execute(p).await.map(|_| ()),
    }
    .unwrap();
    assert_eq!(search(&*s, GENERATOR_ADDRESS).await.1, 0);
    let reopened = store(&t).await;
    assert_eq!(search(&*reopened, GENERATOR_ADDRESS).await, (vec![a], 1));
    assert_eq!(
        search(&*reopened, &pending.to_string()).await,
        (vec![pending], 1)
    );
}
crate::backend_tests!(
    addresses_of_existing_accounts_are_filled_in,
    addresses_of_existing_accounts_are_filled_in
);

async fn sessions_are_listed_and_counted_under_filters(t: TestDb) {
    let s = store(&t).await;
    let t0 = now() - TimeDelta::hours(3);
    let a = account(&*s, Some("a"), None, t0).await;
    let b = account(&*s, Some("b"), None, t0).await;
    let keygen_a = session(&*s, a, SessionType::Keygen, t0).await;
    complete_keygen(&*s, keygen_a, generator_key()).await;
    let keygen_b = session(&*s, b, SessionType::Keygen, t0 + TimeDelta::minutes(1)).await;
    let failed = SessionOutcome::Failed {
        reason: "keygen failed: timeout".into(),
        blamed_party: Some(PartyId::parse("server_party_2").unwrap()),
    };
    assert!(s.finish_session(keygen_b, &failed, now()).await.unwrap());
    let sign_old = session(&*s, a, SessionType::Sign, t0 + TimeDelta::hours(1)).await;
    assert!(
        s.finish_session(sign_old, &SessionOutcome::Completed, now())
            .await
            .unwrap()
    );
    let sign_new = session(&*s, a, SessionType::Sign, now()).await;

    let list = |filter: SessionFilter| {
        let s = s.clone();
        async move {
            let (rows, total) = s.list_sessions(&filter).await.unwrap();
            (rows.iter().map(|r| r.session_id).collect::<Vec<_>>(), total)
        }
    };
    let all = SessionFilter {
        limit: 100,
        ..Default::default()
    };
    // Newest first.
    assert_eq!(
        list(all.clone()).await,
        (vec![sign_new, sign_old, keygen_b, keygen_a], 4)
    );
    assert_eq!(
        list(SessionFilter {
            session_type: Some(SessionType::Sign),
            ..all.clone()
        })
        .await,
        (vec![sign_new, sign_old], 2)
    );
    assert_eq!(
        list(SessionFilter {
            status: Some(AccountSessionStatus::Pending),
            ..all.clone()
        })
        .await,
        (vec![sign_new], 1)
    );
    assert_eq!(
        list(SessionFilter {
            account_id: Some(b),
            ..all.clone()
        })
        .await,
        (vec![keygen_b], 1)
    );
    assert_eq!(
        list(SessionFilter {
            since: Some(t0 + TimeDelta::minutes(1)),
            until: Some(t0 + TimeDelta::hours(1)),
            ..all.clone()
        })
        .await,
        (vec![sign_old, keygen_b], 2)
    );
    assert_eq!(
        list(SessionFilter {
            limit: 2,
            offset: 1,
            ..all.clone()
        })
        .await,
        (vec![sign_old, keygen_b], 4)
    );
    let (rows, _) = s
        .list_sessions(&SessionFilter {
            account_id: Some(b),
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(rows[0].status, AccountSessionStatus::Failed);
    assert_eq!(
        rows[0].failure_reason.as_deref(),
        Some("keygen failed: timeout")
    );
    assert_eq!(
        rows[0].blamed_party.as_ref().map(|p| p.as_str()),
        Some("server_party_2")
    );

    let counts = s.count_sessions(t0 - TimeDelta::seconds(1)).await.unwrap();
    let count = |ty: SessionType, status: AccountSessionStatus| {
        counts
            .iter()
            .find(|c| c.session_type == ty && c.status == status)
            .map_or(0, |c| c.count)
    };
    assert_eq!(
        count(SessionType::Keygen, AccountSessionStatus::Completed),
        1
    );
    assert_eq!(count(SessionType::Keygen, AccountSessionStatus::Failed), 1);
    assert_eq!(count(SessionType::Sign, AccountSessionStatus::Completed), 1);
    assert_eq!(count(SessionType::Sign, AccountSessionStatus::Pending), 1);
    assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 4);
    let recent = s
        .count_sessions(now() - TimeDelta::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|c| (c.session_type, c.status, c.count))
            .collect::<Vec<_>>(),
        [(SessionType::Sign, AccountSessionStatus::Pending, 1)]
    );
}
crate::backend_tests!(
    sessions_are_listed_and_counted_under_filters,
    sessions_are_listed_and_counted_under_filters
);
