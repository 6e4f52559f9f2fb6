//! The HTTP API: the four user-share endpoints (authenticated), the identity key, and the ops
//! routes (`/healthz`, `/readyz` — coordinator and router reachable — and `/metrics`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use mpc_client::{CoordinatorClient, MailboxRef, RouterClient};
use mpc_proto::{ApiError, ErrorCode, PartyId, SessionId};
use mpc_protocol::{IdentityPublicKey, MessageHash};
use mpc_service::{ApiJson, Metrics, Readiness};

use crate::api::{
    GenerateUserShareRequest, IdentityResponse, RecoveryNewUserShareRequest,
    RefreshWithUserShareRequest, SignWithUserShareRequest, SignatureResponse, UserShareResponse,
};
use crate::auth::Caller;
use crate::hpke::DevicePublicKey;
use crate::session::{Answer, Api, Request as Work, Target};

/// Request-body limit and deadlines (see [`crate::PartyApiConfig`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) body_limit: usize,
    pub(crate) request_deadline: Duration,
    /// The share routes' own bound (`max_request_time`).
    pub(crate) session_deadline: Duration,
}

const SHARE_ROUTES: [&str; 4] = [
    "/api/v1/keygen/generate-user-share",
    "/api/v1/sign/with-user-share",
    "/api/v1/refresh/with-user-share",
    "/api/v1/recovery/new-user-share",
];

pub(crate) fn router(
    api: Arc<Api>,
    identity: IdentityPublicKey,
    metrics: &Metrics,
    readiness: Arc<dyn Readiness>,
    limits: Limits,
    throttle: mpc_service::ThrottleState,
) -> Router {
    let body_limit = limits.body_limit;
    let body = IdentityResponse {
        identity_public_key: identity.to_string(),
    };
    let shares = Router::new()
        .route(SHARE_ROUTES[0], post(generate_user_share))
        .route(SHARE_ROUTES[1], post(sign_with_user_share))
        .route(SHARE_ROUTES[2], post(refresh_with_user_share))
        .route(SHARE_ROUTES[3], post(recovery_new_user_share))
        // Before the body is parsed: an unauthenticated caller learns nothing from our parser.
        .route_layer(middleware::from_fn_with_state(
            (api.clone(), body_limit),
            authenticate,
        ))
        // Outside the authentication: a throttled address is refused before its credential is
        // looked at.
        .route_layer(middleware::from_fn_with_state(
            throttle,
            mpc_service::throttle_auth_failures,
        ))
        .with_state(api);
    let app = Router::new()
        .route(
            "/api/v1/identity",
            get(move || {
                let body = body.clone();
                async move { ApiJson(body) }
            }),
        )
        .merge(shares)
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url(
            "/openapi.json",
            <crate::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ))
        .merge(mpc_service::ops_routes(metrics.clone(), readiness))
        .fallback(mpc_service::not_found_fallback)
        .layer(mpc_service::catch_panic_layer())
        .layer(mpc_service::http_metrics_layer(metrics));
    let deadline = move |req: &Request| {
        let template = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str());
        if template.is_some_and(|t| SHARE_ROUTES.contains(&t)) {
            limits.session_deadline + limits.request_deadline
        } else {
            limits.request_deadline
        }
    };
    mpc_service::with_deadline(
        mpc_service::with_body_limit(app, body_limit),
        Arc::new(deadline),
    )
}

async fn authenticate(
    State((api, body_limit)): State<(Arc<Api>, usize)>,
    mut request: Request,
    next: Next,
) -> Response {
    match api.auth.authenticate(request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            // Counted by the throttle when the credential itself was refused (not a 503).
            let counted = e.code.http_status() == axum::http::StatusCode::UNAUTHORIZED;
            let mut response = mpc_service::refuse_after_draining(request, body_limit, e).await;
            if counted {
                response.extensions_mut().insert(mpc_service::AuthFailure);
            }
            response
        }
    }
}

fn target(session_id: &str, party_id: &str, join_token: String) -> Result<Target, ApiError> {
    let session_id = SessionId::parse(session_id)?;
    let party_id = PartyId::parse(party_id)?;
    if join_token.trim().is_empty() {
        return Err(ApiError::invalid_join_token());
    }
    Ok(Target {
        session_id,
        party_id,
        join_token,
    })
}

/// `user_public_key`: absent or null means "do not seal". An empty or blank string is a client
/// that meant to seal and lost its key on the way: handing it the share unsealed would be
/// exactly what it wanted to avoid, so it is a 400.
fn device_key(user_public_key: Option<&str>) -> Result<Option<DevicePublicKey>, ApiError> {
    match user_public_key.map(str::trim) {
        None => Ok(None),
        Some("") => Err(ApiError::invalid_argument(
            "user_public_key is empty: send the device's P-256 public key (SEC1 hex) to seal the share to it, or leave the field out to receive the share wrapped only",
        )),
        Some(hex) => DevicePublicKey::from_hex(hex).map(Some).map_err(|_| {
            ApiError::invalid_argument(
                "user_public_key must be a P-256 public key: SEC1 hex, 33 bytes (compressed) or 65 bytes (uncompressed)",
            )
        }),
    }
}

fn share_response(
    target_ids: (String, String),
    answer: Answer,
) -> Result<UserShareResponse, ApiError> {
    match answer {
        Answer::Share {
            party_index,
            share_data,
            public_key,
        } => Ok(UserShareResponse {
            success: true,
            session_id: target_ids.0,
            party_id: target_ids.1,
            party_index,
            share_data,
            public_key,
        }),
        Answer::Signature(_) => Err(ApiError::internal(&"a share session produced a signature")),
    }
}

async fn generate_user_share(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<GenerateUserShareRequest>,
) -> Result<ApiJson<UserShareResponse>, ApiError> {
    let device = device_key(req.user_public_key.as_deref())?;
    let ids = (req.session_id.clone(), req.party_id.clone());
    let target = target(&req.session_id, &req.party_id, req.join_token)?;
    let answer = api.handle(&caller, target, Work::Keygen { device }).await?;
    share_response(ids, answer).map(ApiJson)
}

async fn sign_with_user_share(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<SignWithUserShareRequest>,
) -> Result<ApiJson<SignatureResponse>, ApiError> {
    let message_hash = MessageHash::new(mpc_proto::parse_message_hash(&req.message_hash)?);
    let ids = (req.session_id.clone(), req.party_id.clone());
    let target = target(&req.session_id, &req.party_id, req.join_token)?;
    let work = Work::Sign {
        share_data: req.share_data,
        message_hash,
    };
    match api.handle(&caller, target, work).await? {
        Answer::Signature(sig) => {
            let der = sig
                .to_der()
                .map_err(|e| ApiError::internal(&format_args!("DER encoding: {e}")))?;
            Ok(ApiJson(SignatureResponse {
                success: true,
                session_id: ids.0,
                party_id: ids.1,
                signature: hex::encode(der),
                r: hex::encode(sig.r),
                s: hex::encode(sig.s),
                v: sig.v,
            }))
        }
        Answer::Share { .. } => Err(ApiError::internal(&"a sign session produced a share")),
    }
}

async fn refresh_with_user_share(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<RefreshWithUserShareRequest>,
) -> Result<ApiJson<UserShareResponse>, ApiError> {
    let device = device_key(req.user_public_key.as_deref())?;
    let ids = (req.session_id.clone(), req.party_id.clone());
    let target = target(&req.session_id, &req.party_id, req.join_token)?;
    let work = Work::Refresh {
        share_data: req.share_data,
        device,
    };
    let answer = api.handle(&caller, target, work).await?;
    share_response(ids, answer).map(ApiJson)
}

async fn recovery_new_user_share(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<RecoveryNewUserShareRequest>,
) -> Result<ApiJson<UserShareResponse>, ApiError> {
    let device = device_key(req.user_public_key.as_deref())?;
    let ids = (req.session_id.clone(), req.party_id.clone());
    let target = target(&req.session_id, &req.party_id, req.join_token)?;
    let answer = api
        .handle(
            &caller,
            target,
            Work::Recovery {
                share_data: req.share_data,
                device,
            },
        )
        .await?;
    share_response(ids, answer).map(ApiJson)
}

/// Ready when the coordinator and the router answer.
pub(crate) struct ApiReadiness {
    pub(crate) coordinator: CoordinatorClient,
    pub(crate) router: RouterClient,
    /// The configured join-token key: a coordinator with another key makes every token fail.
    pub(crate) join_token_key: [u8; 32],
}

/// An error that still proves the service answered (it refused our probe's credentials).
fn answered(e: &ApiError) -> bool {
    !matches!(
        e.code,
        ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::Internal
    )
}

#[async_trait]
impl Readiness for ApiReadiness {
    async fn ready(&self) -> Result<(), String> {
        let key = self
            .coordinator
            .join_token_key()
            .await
            .map_err(|_| "session coordinator".to_owned())?;
        if key != self.join_token_key {
            return Err(
                "the session coordinator's join-token key is not MPC_JOIN_TOKEN_PUBLIC_KEY".into(),
            );
        }
        // No credentials for the router: a refusal of a dummy mailbox read proves it is there.
        let party = PartyId::parse("readiness-probe").map_err(|e| e.message)?;
        let probe = self
            .router
            .fetch(
                MailboxRef {
                    join_token: "",
                    session_id: SessionId::new_random(),
                    party_id: &party,
                },
                0,
                1,
                Duration::ZERO,
            )
            .await;
        match probe {
            Ok(_) => Ok(()),
            Err(e) if answered(&e) => Ok(()),
            Err(_) => Err("message router".to_owned()),
        }
    }
}
