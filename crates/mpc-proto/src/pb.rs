//! Generated gRPC code (prost messages, tonic clients and servers) for every `.proto` file under
//! `proto/`, one module per protobuf package (e.g. `pb::mpc::coordinator::v1`).
#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

include!(concat!(env!("OUT_DIR"), "/mod.rs"));
