//! End-to-end tests of the Message Router: real gRPC and HTTP on 127.0.0.1:0, a fresh database
//! per test, each test on SQLite and (with `DATABASE_URL`) on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod http_mirror;
mod lifecycle;
mod properties;
mod routing;
mod security;
