//! The Server Party API in the cluster (`ClusterBuilder::party_api(true)`): its identity is a
//! delegate the server parties trust, it pins the server parties, and it accepts a generated
//! API key and access tokens from a generated Account Service key.

use std::net::SocketAddr;

use mpc_client::DriverOptions;
use mpc_proto::{AccessTokenSigner, AccountId};
use mpc_protocol::{IdentityPublicKey, SealingKey};
use mpc_service::Shutdown;
use secrecy::SecretString;
use server_party_api::{IdentitySeed, PartyApiConfig, PartyApiError, PartyApiListeners, ShareKeys};
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, DEADLINE};
use crate::http::{self, HttpResponse};
use crate::services::bind;

/// The API's secrets, made before the server parties start (they trust its identity).
pub(crate) struct PartyApiKeys {
    seed: [u8; 32],
    share_key: SealingKey,
    api_key: String,
    pub(crate) access_seed: [u8; 32],
}

pub(crate) fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("random: {e}"));
    b
}

impl PartyApiKeys {
    pub(crate) fn generate() -> Self {
        Self {
            seed: random32(),
            share_key: SealingKey::generate("uk-1").unwrap_or_else(|e| panic!("{e}")),
            api_key: format!("test-api-key-{}", uuid::Uuid::new_v4().simple()),
            access_seed: random32(),
        }
    }

    pub(crate) fn identity(&self) -> IdentityPublicKey {
        IdentitySeed::new(self.seed).public_key()
    }
}

/// The running Server Party API.
pub struct PartyApiHandle {
    pub http: SocketAddr,
    /// Accepted in `X-API-Key`.
    pub api_key: String,
    /// Its identity key (a delegate for the server parties).
    pub identity: IdentityPublicKey,
    keys: PartyApiKeys,
    /// The Account Service it asks about API keys, when the cluster has one.
    account_url: Option<String>,
    stop: Shutdown,
    task: JoinHandle<Result<(), PartyApiError>>,
}

impl PartyApiHandle {
    /// The key that wraps the shares it hands out (to make `share_data` in tests).
    pub fn share_keys(&self) -> ShareKeys {
        ShareKeys::single(self.keys.share_key.clone())
    }

    /// A scoped access token for `account`, signed with the key the API trusts.
    pub fn access_token(&self, account: AccountId) -> String {
        AccessTokenSigner::from_seed(&self.keys.access_seed)
            .issue(
                account,
                std::time::Duration::from_secs(300),
                std::time::SystemTime::now(),
            )
            .unwrap_or_else(|e| panic!("access token: {e}"))
            .0
    }

    /// `POST` a JSON body with the API key.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> HttpResponse {
        self.post_with(path, &[("x-api-key", &self.api_key)], body)
            .await
    }

    /// `POST` a JSON body with the given headers (another key, a bearer token, none).
    pub async fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> HttpResponse {
        http::post_json(self.http, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }
}

/// Changes the Server Party API's configuration before it starts.
pub type PartyApiTweak = std::sync::Arc<dyn Fn(&mut PartyApiConfig) + Send + Sync>;

impl crate::cluster::ClusterBuilder {
    /// Runs the Server Party API with its configuration changed by `tweak`.
    pub fn party_api_config(
        mut self,
        tweak: impl Fn(&mut PartyApiConfig) + Send + Sync + 'static,
    ) -> Self {
        self.party_api_tweak = Some(std::sync::Arc::new(tweak));
        self.party_api(true)
    }
}

/// Starts the API; the listener is bound first, and a health check waits in its backlog.
pub(crate) async fn start(
    keys: PartyApiKeys,
    cluster: &Cluster,
    driver: DriverOptions,
    account_url: Option<String>,
    tweak: Option<&(dyn Fn(&mut PartyApiConfig) + Send + Sync)>,
    stop: Shutdown,
) -> PartyApiHandle {
    let mut config = PartyApiConfig::new(
        IdentitySeed::new(keys.seed),
        keys.share_key.clone(),
        cluster.join_token_key(),
    );
    config.coordinator_endpoint = format!("http://{}", cluster.coordinator().grpc);
    config.router_endpoint = format!("http://{}", cluster.router().grpc);
    config.api_keys = vec![SecretString::from(keys.api_key.clone())];
    config.access_token_public_key =
        Some(AccessTokenSigner::from_seed(&keys.access_seed).public_key());
    config.trust = cluster.pins();
    config.driver = driver;
    config.account_service_url = account_url.clone();
    config.compute = cluster.compute_permits.map(mpc_client::ComputePool::new);
    // Short, so that a revoked key stops working quickly in tests.
    config.api_key_cache_ttl = std::time::Duration::from_millis(500);
    config.service_token = Some(SecretString::from(cluster.service_token().to_owned()));
    if let Some(tweak) = tweak {
        tweak(&mut config);
    }
    let (listener, addr) = bind().await;
    let mut task = tokio::spawn(server_party_api::serve(
        config,
        PartyApiListeners { http: listener },
        stop.clone(),
    ));
    let started = tokio::time::timeout(DEADLINE, async {
        tokio::select! {
            r = http::get(addr, "/healthz") => Ok(r),
            ended = &mut task => Err(ended),
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server party API did not start"));
    match started {
        Ok(Ok(r)) if r.status == 200 => {}
        Ok(r) => panic!("the server party API's health check failed: {r:?}"),
        Err(ended) => panic!("the server party API stopped at once: {ended:?}"),
    }
    PartyApiHandle {
        http: addr,
        api_key: keys.api_key.clone(),
        identity: keys.identity(),
        keys,
        account_url,
        stop,
        task,
    }
}

impl PartyApiHandle {
    /// Stops it; its running sessions report a failure.
    pub(crate) async fn stop(self) -> PartyApiKeys {
        self.stop.cancel();
        match tokio::time::timeout(DEADLINE, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("the server party API failed: {e}"),
            Ok(Err(e)) => panic!("the server party API panicked: {e}"),
            Err(_) => panic!("the server party API did not stop"),
        }
        self.keys
    }
}

impl Cluster {
    /// The Server Party API (built with `ClusterBuilder::party_api(true)`).
    pub fn party_api(&self) -> &PartyApiHandle {
        self.party_api
            .as_ref()
            .unwrap_or_else(|| panic!("the cluster was built without the server party API"))
    }

    /// Restarts the API with the same keys, pinning the server parties' current identities.
    pub async fn restart_party_api(&mut self) {
        let Some(running) = self.party_api.take() else {
            return;
        };
        let account_url = running.account_url.clone();
        let keys = running.stop().await;
        let stop = self.shutdown.child_token();
        let tweak = self.party_api_tweak.clone();
        self.party_api =
            Some(start(keys, self, self.driver, account_url, tweak.as_deref(), stop).await);
    }

    pub(crate) async fn stop_party_api(&mut self) {
        if let Some(running) = self.party_api.take() {
            running.stop().await;
        }
    }
}
