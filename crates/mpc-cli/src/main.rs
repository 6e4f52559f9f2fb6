//! `mpc`: the one binary of MPC-System.
#![forbid(unsafe_code)]

mod commands;
mod local;
mod raw;
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
    /// Run one service in this process (production: PostgreSQL + RabbitMQ).
    Serve(commands::serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Serve(args) => commands::serve::run(args),
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
