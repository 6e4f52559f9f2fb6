//! One module per `mpc` subcommand.

pub mod bench;
pub mod demo;
pub mod serve;
