//! Random interleavings of storing shares and ending sessions, against a model.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use mpc_proto::{SessionId, SessionType};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::super::*;
use super::{new_share, setup, statuses};
use crate::backend_tests;
use crate::testing::TestDb;

#[derive(Clone, Copy, Debug)]
enum Op {
    Put(usize),
    End(usize, SessionOutcome),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4).prop_map(Op::Put),
        (
            0usize..4,
            prop_oneof![
                Just(SessionOutcome::Completed),
                Just(SessionOutcome::Failed),
                Just(SessionOutcome::Expired)
            ]
        )
            .prop_map(|(i, o)| Op::End(i, o)),
    ]
}

/// Random interleavings of storing shares and ending sessions of one key, checked against a
/// model: the first outcome of a session counts; a completed session's share is active unless a
/// later-activated share replaced it; failed/expired sessions keep nothing; never two active.
async fn share_lifecycle_matches_the_model(t: TestDb) {
    let store = setup(&t).await;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(op(), 1..14);
    for case in 0..24 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let key = format!("model-{case}");
        let sessions: Vec<SessionId> = (0..4).map(|_| SessionId::new_random()).collect();
        let mut outcome: BTreeMap<usize, SessionOutcome> = BTreeMap::new();
        let mut stored: BTreeMap<usize, ShareStatus> = BTreeMap::new();
        let mut now = Utc::now();
        for op in &ops {
            now += TimeDelta::milliseconds(1);
            match *op {
                Op::Put(i) => {
                    let mut share = new_share(&key, sessions[i], b"x");
                    share.created_at = now;
                    let result = store.put_pending_share(&share).await;
                    if stored.contains_key(&i) {
                        assert!(matches!(result, Err(StoreError::Conflict(_))), "{ops:?}");
                        continue;
                    }
                    match outcome.get(&i) {
                        Some(SessionOutcome::Completed) => {
                            for s in stored.values_mut() {
                                if *s == ShareStatus::Active {
                                    *s = ShareStatus::Retired;
                                }
                            }
                            stored.insert(i, ShareStatus::Active);
                        }
                        Some(_) => {}
                        None => {
                            stored.insert(i, ShareStatus::Pending);
                        }
                    }
                    result.unwrap();
                }
                Op::End(i, o) => {
                    store
                        .record_outcome(sessions[i], SessionType::Refresh, &key, o, now)
                        .await
                        .unwrap();
                    let first = *outcome.entry(i).or_insert(o);
                    match (first, stored.get(&i).copied()) {
                        (SessionOutcome::Completed, Some(ShareStatus::Pending)) => {
                            for s in stored.values_mut() {
                                if *s == ShareStatus::Active {
                                    *s = ShareStatus::Retired;
                                }
                            }
                            stored.insert(i, ShareStatus::Active);
                        }
                        (
                            SessionOutcome::Failed | SessionOutcome::Expired,
                            Some(ShareStatus::Pending),
                        ) => {
                            stored.remove(&i);
                        }
                        _ => {}
                    }
                }
            }
            let actual: BTreeMap<SessionId, ShareStatus> =
                statuses(store.as_ref(), &key).await.into_iter().collect();
            let expected: BTreeMap<SessionId, ShareStatus> =
                stored.iter().map(|(i, s)| (sessions[*i], *s)).collect();
            assert_eq!(actual, expected, "after {op:?} in {ops:?}");
            for share in store.shares(&key).await.unwrap() {
                assert_eq!(
                    share.sealed_share.is_none(),
                    share.status == ShareStatus::Retired
                );
            }
        }
    }
}

backend_tests!(model, share_lifecycle_matches_the_model);
