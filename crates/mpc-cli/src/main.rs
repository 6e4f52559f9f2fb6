//! `mpc`: the one binary of MPC-System.
#![forbid(unsafe_code)]

mod client;
mod commands;
mod local;
mod raw;
mod secrets;
mod vars;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mpc",
    version,
    about = "MPC-System: threshold ECDSA signing without a whole private key anywhere"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Keygen and one signature with every party in this process, verified with ecrecover.
    Demo(commands::demo::DemoArgs),
    /// Measure keygen and signing (in-process: engine against the bare library).
    Bench(commands::bench::BenchArgs),
    /// The whole system in this process on the embedded default (SQLite, in-process bus).
    Up(commands::up::UpArgs),
    /// Generate secrets and derive the public keys services pin.
    Keys(commands::admin::KeysArgs),
    /// A server party's identity, master-key rotation and key bans.
    Party(commands::admin::PartyArgs),
    /// Run one service in this process (production: PostgreSQL + RabbitMQ).
    Serve(commands::serve::ServeArgs),
    /// Create a key on a running system (a device and server parties), with progress.
    Keygen(commands::remote::KeygenArgs),
    /// Sign a hash with an account's key on a running system; verified with ecrecover.
    Sign(commands::remote::SignArgs),
    /// Read a session of a running system.
    Session(commands::remote::SessionArgs),
    /// List the accounts of a running system.
    Accounts(commands::remote::AccountsArgs),
}

fn main() -> std::process::ExitCode {
    // reqwest and tonic use rustls without a built-in provider: install ring's, once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Up(args) => commands::up::run(args),
        Command::Keys(args) => commands::admin::keys(args),
        Command::Party(args) => commands::admin::party(args),
        Command::Keygen(args) => commands::remote::keygen(args),
        Command::Sign(args) => commands::remote::sign(args),
        Command::Session(args) => commands::remote::session(args),
        Command::Accounts(args) => commands::remote::accounts(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole cause chain on one line, without a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
