//! Process-wide `tracing` set-up.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber.
///
/// - `MPC_LOG_FORMAT=json` writes one JSON object per line (for log shippers); anything else,
///   or unset, writes human-readable text, coloured only when stderr is a terminal.
/// - The filter comes from `MPC_LOG`, else `RUST_LOG`, else `info` (`RUST_LOG` syntax, e.g.
///   `info,session_coordinator=debug`). An invalid filter falls back to `info` with a notice on
///   stderr rather than failing start-up.
///
/// Only the first call in a process installs anything; later calls (every test calls it) are
/// no-ops.
pub fn init_tracing() {
    let (filter, bad_filter) = filter_from_env();
    let json = std::env::var("MPC_LOG_FORMAT")
        .map(|f| f.eq_ignore_ascii_case("json"))
        .unwrap_or(false);
    // Colour only on a terminal: escape codes make log files and collectors unreadable.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder.json().with_current_span(true).try_init().is_ok()
    } else {
        builder.try_init().is_ok()
    };
    if installed && let Some(bad) = bad_filter {
        tracing::warn!(filter = %bad, "invalid log filter; using `info`");
    }
}

/// The filter to use, and the invalid directive string when the configured one did not parse.
fn filter_from_env() -> (EnvFilter, Option<String>) {
    let configured = ["MPC_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()));
    match configured {
        None => (EnvFilter::new("info"), None),
        Some(directives) => match EnvFilter::try_new(&directives) {
            Ok(filter) => (filter, None),
            Err(_) => (EnvFilter::new("info"), Some(directives)),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_twice_is_harmless() {
        super::init_tracing();
        super::init_tracing();
        tracing::info!("still logging");
    }
}
