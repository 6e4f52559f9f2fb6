//! The chaos test's load: wallets made by keygens and signers, all through the guide's HTTP
//! flow, retrying as a careful client does (same Idempotency-Key, a device that rejoins after
//! its request was cut), and a ledger of everything that happened.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::{Value, json};

const DEVICE: &str = "user_device_chaos";
const SERVERS: [[&str; 2]; 3] = [
    ["server_party_1", "server_party_3"],
    ["server_party_2", "server_party_3"],
    ["server_party_1", "server_party_2"],
];
/// A keygen is started this often while the chaos runs.
const KEYGEN_EVERY: Duration = Duration::from_secs(5);
/// Between a client's retries.
const RETRY_PAUSE: Duration = Duration::from_millis(400);

/// A small, seedable generator: the chaos must replay from its seed.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Debug)]
pub struct Wallet {
    pub account: String,
    /// Uncompressed SEC1, lowercase hex.
    pub public_key: String,
    /// The device's share, when its answer reached us.
    pub share: Option<String>,
    pub servers: [&'static str; 2],
}

/// Everything the load saw.
#[derive(Default)]
pub struct Ledger {
    /// (User-Agent, status) of every Account Service request that got an answer.
    pub answered: Mutex<Vec<(String, u16)>>,
    /// Session ids the Account Service handed out, with their type.
    pub sessions: Mutex<Vec<(String, &'static str)>>,
    pub completed: Mutex<BTreeMap<&'static str, u64>>,
    /// Failures as the client saw them, by reason.
    pub failed: Mutex<BTreeMap<String, u64>>,
    pub retries: AtomicU64,
    /// Signatures received that do not verify (must stay 0).
    pub bad_signatures: AtomicU64,
    /// Keygens that completed but whose device answer was lost (the device has no share).
    pub device_shares_lost: AtomicU64,
    next_request: AtomicU64,
}

impl Ledger {
    fn fail(&self, what: &str, reason: &str) {
        // Session ids and party indices make every reason unique; the table groups by kind.
        let reason: String = reason.chars().take(110).collect();
        *self
            .failed
            .lock()
            .unwrap()
            .entry(format!("{what}: {reason}"))
            .or_default() += 1;
    }

    fn complete(&self, what: &'static str) {
        *self.completed.lock().unwrap().entry(what).or_default() += 1;
    }

    fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// `ecrecover(hash, r, s, v)` gives `public_key_hex` (k256, independent of the system).
pub fn verifies(public_key_hex: &str, hash: &[u8; 32], r: &str, s: &str, v: u64) -> bool {
    let check = || -> Option<bool> {
        let vk = VerifyingKey::from_sec1_bytes(&hex::decode(public_key_hex).ok()?).ok()?;
        let mut rb = [0u8; 32];
        let mut sb = [0u8; 32];
        hex::decode_to_slice(r.trim_start_matches("0x"), &mut rb).ok()?;
        hex::decode_to_slice(s.trim_start_matches("0x"), &mut sb).ok()?;
        let sig = Signature::from_scalars(rb, sb).ok()?;
        let v = RecoveryId::from_byte(u8::try_from(v).ok()?)?;
        Some(VerifyingKey::recover_from_prehash(hash, &sig, v).ok()? == vk)
    };
    check().unwrap_or(false)
}

struct Inner {
    client: reqwest::Client,
    key: String,
    account: String,
    party_api: String,
    ledger: Arc<Ledger>,
    wallets: Mutex<Vec<Wallet>>,
    lifetime: Duration,
}

#[derive(Clone)]
pub struct Load(Arc<Inner>);

/// An HTTP answer, or why there was none.
type Answer = Result<(u16, Value), String>;

fn transient(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

impl Load {
    pub fn new(
        client: reqwest::Client,
        key: String,
        account: String,
        party_api: String,
        ledger: Arc<Ledger>,
        lifetime: Duration,
    ) -> Self {
        Self(Arc::new(Inner {
            client,
            key,
            account,
            party_api,
            ledger,
            wallets: Mutex::new(Vec::new()),
            lifetime,
        }))
    }

    pub fn wallets(&self) -> Vec<Wallet> {
        self.0.wallets.lock().unwrap().clone()
    }

    pub fn account_url(&self) -> &str {
        &self.0.account
    }

    pub fn api_key(&self) -> &str {
        &self.0.key
    }

    /// One request; an Account Service request that gets an answer is recorded by its unique
    /// User-Agent, for the audit check.
    async fn send(&self, get: bool, url: &str, body: Option<&Value>, idem: Option<&str>) -> Answer {
        let n = self.0.ledger.next_request.fetch_add(1, Ordering::Relaxed);
        let agent = format!("mpc-chaos/{n}");
        let mut req = if get {
            self.0.client.get(url)
        } else {
            self.0.client.post(url)
        };
        req = req
            .header("X-API-Key", &self.0.key)
            .header("User-Agent", &agent)
            .timeout(self.0.lifetime + Duration::from_secs(10));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(idem) = idem {
            req = req.header("Idempotency-Key", idem);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !get && url.starts_with(&self.0.account) {
            self.0.ledger.answered.lock().unwrap().push((agent, status));
        }
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// POSTs to the Account Service until an answer that is not transient (same
    /// Idempotency-Key every time), for at most 30 s.
    async fn create(&self, path: &str, body: Value) -> Result<Value, String> {
        let idem = uuid_like();
        let url = format!("{}{path}", self.0.account);
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            match self.send(false, &url, Some(&body), Some(&idem)).await {
                Ok((200 | 201, v)) => return Ok(v),
                // The first attempt (cut off by a kill) is still being answered: retry shortly.
                Ok((409, v))
                    if message(&v).contains("still in progress") && Instant::now() < give_up =>
                {
                    self.0.ledger.retried();
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok((s, v)) if !transient(s) => return Err(format!("{s} {}", message(&v))),
                Ok(_) | Err(_) if Instant::now() < give_up => {
                    self.0.ledger.retried();
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok((s, v)) => return Err(format!("gave up after 30 s: {s} {}", message(&v))),
                Err(e) => return Err(format!("gave up after 30 s: {e}")),
            }
        }
    }

    /// The session as the Account Service reports it once it has ended (`None`: not within the
    /// session's lifetime).
    async fn final_session(&self, id: &str) -> Option<Value> {
        let url = format!("{}/api/v1/mpc/sessions/{id}", self.0.account);
        let give_up = Instant::now() + self.0.lifetime + Duration::from_secs(10);
        while Instant::now() < give_up {
            if let Ok((200, v)) = self.send(true, &url, None, None).await
                && matches!(
                    v["status"].as_str(),
                    Some("completed" | "failed" | "expired")
                )
            {
                return Some(v);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        None
    }

    /// The device's part through the Server Party API, rejoining when its request was cut (the
    /// API was killed); `Ok(answer)` on success, `Err(reason)` when the session failed.
    async fn device_part(
        &self,
        path: &str,
        body: Value,
        session_id: &str,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.0.party_api);
        let give_up = Instant::now() + self.0.lifetime + Duration::from_secs(10);
        loop {
            match self.send(false, &url, Some(&body), None).await {
                Ok((200, v)) => return Ok(v),
                Ok((s, v)) if !transient(s) || Instant::now() >= give_up => {
                    return Err(message(&v));
                }
                Ok(_) | Err(_) => {
                    if Instant::now() >= give_up {
                        return Err("no answer within the session's lifetime".into());
                    }
                    self.0.ledger.retried();
                    tokio::time::sleep(RETRY_PAUSE).await;
                    // Over already (it failed while we were cut off)? Then stop retrying.
                    let url = format!("{}/api/v1/mpc/sessions/{session_id}", self.0.account);
                    if let Ok((200, s)) = self.send(true, &url, None, None).await
                        && matches!(
                            s["status"].as_str(),
                            Some("completed" | "failed" | "expired")
                        )
                    {
                        return Err(format!("session {}", s["status"].as_str().unwrap_or("")));
                    }
                }
            }
        }
    }

    /// A 2-of-3 keygen: the device through the Server Party API and two server parties.
    pub async fn keygen(&self, username: &str) {
        let n = username.bytes().map(u64::from).sum::<u64>();
        let servers = SERVERS[usize::try_from(n % 3).unwrap()];
        let body = json!({"threshold_n": 3, "threshold_t": 2, "username": username,
            "participants": [
                {"party_id": DEVICE, "device_type": "android"},
                {"party_id": servers[0], "device_type": "server"},
                {"party_id": servers[1], "device_type": "server"}]});
        let ledger = &self.0.ledger;
        let created = match self.create("/api/v1/mpc/keygen", body).await {
            Ok(v) => v,
            Err(e) => return ledger.fail("keygen not created", &e),
        };
        let session_id = created["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let account = created["account_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ledger
            .sessions
            .lock()
            .unwrap()
            .push((session_id.clone(), "keygen"));
        let part = self
            .device_part(
                "/api/v1/keygen/generate-user-share",
                json!({"session_id": session_id, "party_id": DEVICE,
                       "join_token": created["join_tokens"][DEVICE]}),
                &session_id,
            )
            .await;
        match part {
            Ok(share) => {
                ledger.complete("keygen");
                self.0.wallets.lock().unwrap().push(Wallet {
                    account,
                    public_key: share["public_key"].as_str().unwrap_or("").to_lowercase(),
                    share: share["share_data"].as_str().map(str::to_owned),
                    servers,
                });
            }
            Err(reason) => match self.final_session(&session_id).await {
                Some(s) if s["status"] == "completed" => {
                    // The account is active, but the device's answer never reached it.
                    ledger.device_shares_lost.fetch_add(1, Ordering::Relaxed);
                    ledger.complete("keygen");
                    self.0.wallets.lock().unwrap().push(Wallet {
                        account,
                        public_key: s["public_key"].as_str().unwrap_or("").to_lowercase(),
                        share: None,
                        servers,
                    });
                }
                Some(s) => ledger.fail("keygen", s["failure_reason"].as_str().unwrap_or(&reason)),
                None => ledger.fail("keygen", "did not end within its lifetime"),
            },
        }
    }

    /// One signature with `wallet`: the device and one of its server parties (or both server
    /// parties, when the device lost its share). Returns whether it completed.
    pub async fn sign(&self, wallet: &Wallet, pick: u64) -> bool {
        let mut hash = [0u8; 32];
        getrandom::fill(&mut hash).unwrap();
        hash[0] |= 1; // never ≡ 0 mod n
        let server = wallet.servers[usize::try_from(pick % 2).unwrap()];
        let parties: Vec<&str> = match wallet.share {
            Some(_) => vec![DEVICE, server],
            None => wallet.servers.to_vec(),
        };
        let participants: Vec<Value> = parties.iter().map(|p| json!({"party_id": p})).collect();
        let body = json!({"account_id": wallet.account,
            "message_hash": format!("0x{}", hex::encode(hash)), "participants": participants});
        let ledger = &self.0.ledger;
        let created = match self.create("/api/v1/mpc/sign", body).await {
            Ok(v) => v,
            Err(e) => {
                ledger.fail("sign not created", &e);
                return false;
            }
        };
        let session_id = created["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ledger
            .sessions
            .lock()
            .unwrap()
            .push((session_id.clone(), "sign"));
        let outcome = match &wallet.share {
            Some(share) => {
                self.device_part(
                    "/api/v1/sign/with-user-share",
                    json!({"session_id": session_id, "party_id": DEVICE,
                           "join_token": created["join_tokens"][DEVICE],
                           "share_data": share, "message_hash": hex::encode(hash)}),
                    &session_id,
                )
                .await
            }
            None => Err(String::new()),
        };
        let signature = match outcome {
            Ok(v) => Some(v),
            Err(reason) => match self.final_session(&session_id).await {
                Some(s) if s["status"] == "completed" => Some(s),
                Some(s) => {
                    ledger.fail("sign", s["failure_reason"].as_str().unwrap_or(&reason));
                    return false;
                }
                None => {
                    ledger.fail("sign", "did not end within its lifetime");
                    return false;
                }
            },
        };
        let sig = signature.unwrap_or_default();
        let ok = verifies(
            &wallet.public_key,
            &hash,
            sig["r"].as_str().unwrap_or(""),
            sig["s"].as_str().unwrap_or(""),
            sig["v"].as_u64().unwrap_or(9),
        );
        if ok {
            ledger.complete("sign");
        } else {
            ledger.bad_signatures.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Starts `signers` signing loops and a keygen loop until [`Running::stop`].
    pub fn start(&self, signers: usize, seed: u64) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for i in 0..signers {
            let (load, stop) = (self.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = SplitMix(seed ^ (i as u64 + 1).wrapping_mul(0x1234_5678_9ABC));
                while !stop.load(Ordering::Relaxed) {
                    let wallets = load.wallets();
                    let w = &wallets[usize::try_from(rng.below(wallets.len() as u64)).unwrap()];
                    load.sign(w, rng.next()).await;
                }
            }));
        }
        let (load, stop_keygens) = (self.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop_keygens.load(Ordering::Relaxed) {
                let next = Instant::now() + KEYGEN_EVERY;
                load.keygen(&format!("chaos-{n}")).await;
                n += 1;
                tokio::time::sleep_until(next.into()).await;
            }
        }));
        Running { stop, tasks }
    }
}

pub struct Running {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Lets every loop finish its current operation (each bounded by the session lifetime).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}
