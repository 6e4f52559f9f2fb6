//! The gRPC front end (`mpc.router.v1.MessageRouter`) over [`Relay`].

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use mpc_proto::ApiError;
use mpc_proto::pb::mpc::router::v1::message_router_server::{MessageRouter, MessageRouterServer};
use mpc_proto::pb::mpc::router::v1::{
    FetchMessagesRequest, FetchMessagesResponse, MpcMessage, RouteMessageRequest,
    RouteMessageResponse, SubscribeMessagesRequest,
};
use mpc_store::router::StoredEnvelope;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::relay::{DirtyEnvelope, MailboxRequest, Relay};

/// Room for the rest of a request around the payload (token, ids): a payload up to the
/// configured limit gets through the transport and is judged by [`Relay`], which answers
/// `payload_too_large` with the limit in the message. A request larger than `limit + this` is
/// refused by the transport itself (`OUT_OF_RANGE`).
const REQUEST_OVERHEAD: usize = 1024 * 1024;

/// The tonic service, with message size limits set for `max_payload_bytes`.
pub fn service(relay: Relay, max_payload_bytes: usize) -> MessageRouterServer<GrpcRouter> {
    MessageRouterServer::new(GrpcRouter { relay })
        .max_decoding_message_size(max_payload_bytes.saturating_add(REQUEST_OVERHEAD))
        .max_encoding_message_size(usize::MAX)
}

#[derive(Clone, Debug)]
pub struct GrpcRouter {
    relay: Relay,
}

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<MpcMessage, Status>> + Send>>;

#[tonic::async_trait]
impl MessageRouter for GrpcRouter {
    async fn route_message(
        &self,
        request: Request<RouteMessageRequest>,
    ) -> Result<Response<RouteMessageResponse>, Status> {
        // Mutual TLS: a server party's certificate may only act as that party.
        mpc_service::tls::authorize_join_token(&request, &request.get_ref().join_token)?;
        let RouteMessageRequest {
            join_token,
            envelope,
        } = request.into_inner();
        let envelope = envelope.ok_or_else(|| ApiError::invalid_argument("envelope is missing"))?;
        let routed = self
            .relay
            .route(
                &join_token,
                DirtyEnvelope {
                    message_id: envelope.message_id,
                    session_id: envelope.session_id,
                    from_party: envelope.from_party,
                    to_party: envelope.to_party,
                    round: envelope.round,
                    payload: envelope.payload,
                },
            )
            .await?;
        Ok(Response::new(RouteMessageResponse {
            message_id: routed.message_id.to_string(),
            duplicate: routed.duplicate,
            recipients: routed.recipients,
        }))
    }

    type SubscribeMessagesStream = EnvelopeStream;

    async fn subscribe_messages(
        &self,
        request: Request<SubscribeMessagesRequest>,
    ) -> Result<Response<EnvelopeStream>, Status> {
        // Mutual TLS: a server party's certificate may only act as that party.
        mpc_service::tls::authorize_join_token(&request, &request.get_ref().join_token)?;
        let SubscribeMessagesRequest {
            join_token,
            session_id,
            party_id,
            after_seq,
        } = request.into_inner();
        let receiver = self.relay.subscribe(
            &join_token,
            &MailboxRequest {
                session_id,
                party_id,
                after_seq,
            },
        )?;
        let stream =
            ReceiverStream::new(receiver).map(|item| item.map(to_wire).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_messages(
        &self,
        request: Request<FetchMessagesRequest>,
    ) -> Result<Response<FetchMessagesResponse>, Status> {
        // Mutual TLS: a server party's certificate may only act as that party.
        mpc_service::tls::authorize_join_token(&request, &request.get_ref().join_token)?;
        let FetchMessagesRequest {
            join_token,
            session_id,
            party_id,
            after_seq,
            limit,
            wait_ms,
        } = request.into_inner();
        let fetched = self
            .relay
            .fetch(
                &join_token,
                &MailboxRequest {
                    session_id,
                    party_id,
                    after_seq,
                },
                limit,
                Duration::from_millis(u64::from(wait_ms)),
            )
            .await?;
        Ok(Response::new(FetchMessagesResponse {
            messages: fetched.envelopes.into_iter().map(to_wire).collect(),
            last_seq: fetched.last_seq,
            has_more: fetched.has_more,
        }))
    }
}

pub fn to_wire(envelope: StoredEnvelope) -> MpcMessage {
    MpcMessage {
        message_id: envelope.message_id.to_string(),
        session_id: envelope.session_id.to_string(),
        from_party: envelope.from_party.to_string(),
        to_party: envelope.to_party.map(|p| p.to_string()).unwrap_or_default(),
        round: envelope.round,
        payload: envelope.payload,
        seq: envelope.seq,
        created_at: crate::rfc3339(envelope.created_at),
    }
}
