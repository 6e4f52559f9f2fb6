//! What the chaos test proves afterwards, read from the services' own schemas: sessions ended
//! within their lifetime, signatures verify, outcomes applied exactly once, shares neither lost
//! nor duplicated, every answer audited, every active account still signs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::chaos_load::{Ledger, Load, Wallet, verifies};

pub struct Checks {
    pub client: reqwest::Client,
    pub database_url: String,
    pub prefix: String,
    pub lifetime: Duration,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<(String, String)>,
    problems: Vec<String>,
}

impl Report {
    fn row(&mut self, k: impl Into<String>, v: impl ToString) {
        self.rows.push((k.into(), v.to_string()));
    }

    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    pub fn print(&self, kills: &BTreeMap<&str, u32>, seed: u64) {
        let mut out = format!("\n| chaos run (seed {seed}) | |\n|---|---|\n");
        for (k, v) in &self.rows {
            out += &format!("| {k} | {v} |\n");
        }
        for (service, n) in kills {
            out += &format!("| kills: {service} | {n} |\n");
        }
        out += &format!("| problems found | {} |\n", self.problems.len());
        eprintln!("{out}");
        for p in &self.problems {
            eprintln!("PROBLEM: {p}");
        }
    }

    pub fn assert_clean(&self) {
        assert!(
            self.problems.is_empty(),
            "the chaos run found {} problem(s), first: {}",
            self.problems.len(),
            self.problems[0]
        );
    }
}

const TERMINAL: [&str; 3] = ["completed", "failed", "expired"];

struct Session {
    id: String,
    ty: String,
    status: String,
    reason: Option<String>,
    ended_after: f64,
    hash: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
}

impl Checks {
    fn schema(&self, s: &str) -> String {
        format!("\"{}_{s}\"", self.prefix)
    }

    async fn sessions(&self, pool: &PgPool) -> Vec<Session> {
        let sql = format!(
            "SELECT id::text AS id, session_type, status, failure_reason, \
             EXTRACT(EPOCH FROM (updated_at - created_at))::float8 AS ended_after, \
             message_hash, public_key, signature FROM {}.mpc_sessions",
            self.schema("coordinator")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| Session {
                id: r.get("id"),
                ty: r.get("session_type"),
                status: r.get("status"),
                reason: r.get("failure_reason"),
                ended_after: r.get("ended_after"),
                hash: r.get("message_hash"),
                public_key: r.get("public_key"),
                signature: r.get("signature"),
            })
            .collect()
    }

    /// Waits until every session has ended (at most a lifetime and a little).
    async fn drained(&self, pool: &PgPool) -> Vec<Session> {
        let give_up = Instant::now() + self.lifetime + Duration::from_secs(15);
        loop {
            let all = self.sessions(pool).await;
            let open = all
                .iter()
                .filter(|s| !TERMINAL.contains(&s.status.as_str()))
                .count();
            if open == 0 || Instant::now() > give_up {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// (session id → status) as the Account Service recorded them, once it has caught up with
    /// every ended session it started (or 30 s passed).
    async fn account_sessions(
        &self,
        pool: &PgPool,
        coordinator: &BTreeMap<String, String>,
    ) -> BTreeMap<String, (String, String)> {
        let sql = format!(
            "SELECT session_id::text AS id, status, account_id::text AS account \
             FROM {}.account_sessions",
            self.schema("account")
        );
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            let rows: BTreeMap<String, (String, String)> =
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get("id"), (r.get("status"), r.get("account"))))
                    .collect();
            let behind = rows
                .iter()
                .filter(|(id, (status, _))| status == "pending" && coordinator.contains_key(*id))
                .count();
            if behind == 0 || Instant::now() > give_up {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn run(&self, load: &Load, ledger: &Ledger) -> Report {
        let mut report = Report::default();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url)
            .await
            .unwrap();
        let sessions = self.drained(&pool).await;
        let mut by_type_status: BTreeMap<(String, String), u64> = BTreeMap::new();
        for s in &sessions {
            *by_type_status
                .entry((s.ty.clone(), s.status.clone()))
                .or_default() += 1;
            if !TERMINAL.contains(&s.status.as_str()) {
                report.problem(format!("session {} never ended: {}", s.id, s.status));
                continue;
            }
            if s.status != "completed" && s.reason.as_deref().unwrap_or("").is_empty() {
                report.problem(format!("session {} {} without a reason", s.id, s.status));
            }
            // The sweep runs every 250 ms: a little slack past the lifetime.
            if s.ended_after > self.lifetime.as_secs_f64() + 2.0 {
                report.problem(format!(
                    "session {} ended {:.1} s after its creation, past its lifetime",
                    s.id, s.ended_after
                ));
            }
            if s.ty == "sign" && s.status == "completed" {
                let ok = match (&s.signature, &s.hash, &s.public_key) {
                    (Some(sig), Some(hash), Some(key)) if sig.len() == 65 && hash.len() == 32 => {
                        verifies(
                            &hex::encode(key),
                            &hash.as_slice().try_into().unwrap(),
                            &hex::encode(&sig[..32]),
                            &hex::encode(&sig[32..64]),
                            u64::from(sig[64]),
                        )
                    }
                    _ => false,
                };
                if !ok {
                    report.problem(format!("session {}: its signature does not verify", s.id));
                }
            }
        }
        report.row("requests answered by the Account Service", {
            ledger.answered.lock().unwrap().len()
        });
        report.row("sessions created (coordinator)", sessions.len());
        for ((ty, status), n) in &by_type_status {
            report.row(format!("sessions: {ty} {status}"), n);
        }
        let mut failure_kinds: BTreeMap<String, u64> = BTreeMap::new();
        for s in sessions.iter().filter(|s| s.status != "completed") {
            *failure_kinds
                .entry(reason_kind(s.reason.as_deref().unwrap_or("")))
                .or_default() += 1;
        }
        for (reason, n) in &failure_kinds {
            report.row(format!("ended without completing: {reason}"), n);
        }
        for (what, n) in ledger.completed.lock().unwrap().iter() {
            report.row(format!("client saw completed: {what}"), n);
        }
        for (what, n) in ledger.failed.lock().unwrap().iter() {
            report.row(format!("client saw failed: {what}"), n);
        }
        report.row("client retries", ledger.retries.load(Ordering::Relaxed));
        let bad = ledger.bad_signatures.load(Ordering::Relaxed);
        report.row("signatures received that do not verify", bad);
        if bad > 0 {
            report.problem(format!(
                "{bad} signature(s) handed to the client do not verify"
            ));
        }
        let lost = ledger.device_shares_lost.load(Ordering::Relaxed);
        report.row("keygens completed whose device answer was lost", lost);

        self.outcomes_applied_once(&pool, &sessions, &mut report)
            .await;
        let active = self.shares(&pool, &mut report).await;
        self.audited(&pool, ledger, &mut report).await;
        self.active_accounts_sign(load, &active, &mut report).await;
        pool.close().await;
        report
    }

    async fn outcomes_applied_once(
        &self,
        pool: &PgPool,
        sessions: &[Session],
        report: &mut Report,
    ) {
        let coordinator: BTreeMap<String, String> = sessions
            .iter()
            .map(|s| (s.id.clone(), s.status.clone()))
            .collect();
        let recorded = self.account_sessions(pool, &coordinator).await;
        let mut unknown = 0;
        for (id, status) in &coordinator {
            match recorded.get(id) {
                Some((r, _)) if r == status => {}
                Some((r, _)) => report.problem(format!(
                    "session {id}: the coordinator says {status}, the Account Service applied {r}"
                )),
                None => unknown += 1,
            }
        }
        report.row(
            "coordinator sessions unknown to the Account Service",
            unknown,
        );
        for (id, (status, _)) in &recorded {
            if !coordinator.contains_key(id) && status != "failed" {
                report.problem(format!(
                    "session {id} recorded {status} by the Account Service, unknown to the coordinator"
                ));
            }
        }
        // Accounts follow their keygen: active with the coordinator's key, or failed.
        let sql = format!(
            "SELECT id::text AS id, status, public_key, keygen_session_id::text AS keygen \
             FROM {}.accounts",
            self.schema("account")
        );
        let keys: BTreeMap<&str, Option<&Vec<u8>>> = sessions
            .iter()
            .filter(|s| s.ty == "keygen")
            .map(|s| (s.id.as_str(), s.public_key.as_ref()))
            .collect();
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap()
        {
            let (id, status): (String, String) = (r.get("id"), r.get("status"));
            let keygen: Option<String> = r.get("keygen");
            let key: Option<Vec<u8>> = r.get("public_key");
            let outcome = keygen.as_deref().and_then(|k| coordinator.get(k));
            match (status.as_str(), outcome.map(String::as_str)) {
                ("active", Some("completed")) => {
                    let expected = keygen
                        .as_deref()
                        .and_then(|k| keys.get(k))
                        .copied()
                        .flatten();
                    if key.as_ref() != expected {
                        report.problem(format!("account {id}: its key is not its keygen's"));
                    }
                }
                ("failed", Some("failed" | "expired")) | ("failed", None) => {}
                (s, o) => report.problem(format!("account {id} is {s} but its keygen is {o:?}")),
            }
        }
    }

    /// Every active account: 3 active share rows at the Account Service, and exactly one active
    /// share at each of its server parties; no party holds an active share of a key whose
    /// account is not active. Returns the active accounts' (id, public key hex).
    async fn shares(&self, pool: &PgPool, report: &mut Report) -> BTreeMap<String, String> {
        let sql = format!(
            "SELECT a.id::text AS id, a.public_key, s.party_id FROM {acc}.accounts a \
             JOIN {acc}.account_shares s ON s.account_id = a.id AND s.is_active \
             WHERE a.status = 'active'",
            acc = self.schema("account")
        );
        let mut active: BTreeMap<String, String> = BTreeMap::new();
        let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap()
        {
            let id: String = r.get("id");
            let key: Option<Vec<u8>> = r.get("public_key");
            active.insert(id.clone(), hex::encode(key.unwrap_or_default()));
            holders.entry(id).or_default().push(r.get("party_id"));
        }
        for (id, parties) in &holders {
            if parties.len() != 3 {
                report.problem(format!(
                    "account {id} has {} active share rows",
                    parties.len()
                ));
            }
        }
        let mut shares_checked = 0;
        for i in 1..=3 {
            let party = format!("server_party_{i}");
            let sql = format!(
                "SELECT key_id, count(*) FILTER (WHERE status = 'active') AS active, \
                 count(*) AS all_rows FROM {}.party_key_shares GROUP BY key_id",
                self.schema(&format!("party_{i}"))
            );
            let counts: BTreeMap<String, (i64, i64)> = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get("key_id"), (r.get("active"), r.get("all_rows"))))
                .collect();
            for (id, parties) in &holders {
                if parties.contains(&party) {
                    shares_checked += 1;
                    let n = counts.get(id).map_or(0, |c| c.0);
                    if n != 1 {
                        report.problem(format!("{party} holds {n} active shares of account {id}"));
                    }
                }
            }
            for (key, (n, _)) in &counts {
                if *n > 0 && !active.contains_key(key) {
                    report.problem(format!(
                        "{party} holds an active share of {key}, whose account is not active"
                    ));
                }
            }
        }
        report.row("accounts active", active.len());
        report.row(
            "server-party shares checked (one active each)",
            shares_checked,
        );
        active
    }

    async fn audited(&self, pool: &PgPool, ledger: &Ledger, report: &mut Report) {
        let sql = format!(
            "SELECT user_agent, response_status FROM {}.mpc_audit_logs \
             WHERE user_agent LIKE 'mpc-chaos/%'",
            self.schema("account")
        );
        let rows: BTreeSet<(String, i32)> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<Option<String>, _>("user_agent").unwrap_or_default(),
                    r.get::<Option<i32>, _>("response_status").unwrap_or(0),
                )
            })
            .collect();
        let answered = ledger.answered.lock().unwrap().clone();
        let mut missing = 0;
        for (agent, status) in &answered {
            if !rows.contains(&(agent.clone(), i32::from(*status))) {
                missing += 1;
                if missing <= 5 {
                    report.problem(format!("no audit row for {agent} (answered {status})"));
                }
            }
        }
        if missing > 5 {
            report.problem(format!(
                "… {} more answers without an audit row",
                missing - 5
            ));
        }
        report.row("answers with their audit row", answered.len() - missing);
    }

    /// Every active account signs once more, now that nothing is being killed.
    async fn active_accounts_sign(
        &self,
        load: &Load,
        active: &BTreeMap<String, String>,
        report: &mut Report,
    ) {
        let wallets = load.wallets();
        let mut signed = 0;
        for (id, key) in active {
            let wallet = match wallets.iter().find(|w| &w.account == id) {
                Some(w) => Wallet {
                    public_key: key.clone(),
                    ..w.clone()
                },
                None => {
                    // Its keygen's device answer never came and the ledger missed it: which
                    // server parties hold it is in the account.
                    let url = format!("{}/api/v1/accounts/{id}", load.account_url());
                    let a: serde_json::Value = self
                        .client
                        .get(url)
                        .header("X-API-Key", load.api_key())
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let servers: Vec<&'static str> =
                        ["server_party_1", "server_party_2", "server_party_3"]
                            .into_iter()
                            .filter(|p| a.to_string().contains(p))
                            .collect();
                    Wallet {
                        account: id.clone(),
                        public_key: key.clone(),
                        share: None,
                        servers: [servers[0], servers[1]],
                    }
                }
            };
            if load.sign(&wallet, 0).await {
                signed += 1;
            } else {
                report.problem(format!("active account {id} cannot sign after the chaos"));
            }
        }
        report.row("active accounts that signed afterwards", signed);
    }
}

/// A failure reason without what makes each one unique (ids, numbers).
fn reason_kind(reason: &str) -> String {
    let words: Vec<String> = reason
        .split_whitespace()
        .map(|w| {
            if w.len() > 20 && w.chars().filter(|c| *c == '-').count() >= 4 {
                "<id>".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let s = words.join(" ");
    s.chars().take(100).collect()
}
