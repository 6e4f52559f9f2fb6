//! One module per `mpc` subcommand.

pub mod admin;
pub mod bench;
pub mod bench_batch;
pub mod bench_http;
pub mod demo;
pub mod demo_remote;
pub mod remote;
pub mod serve;
pub mod up;
