//! Compiles every `proto/**/*.proto` with protox (pure Rust: no system `protoc` needed) and
//! generates prost messages plus tonic clients and servers. `src/pb.rs` includes the result.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

const REDACTED_DEBUG: [&str; 10] = [
    "mpc.coordinator.v1.CreateSessionResponse",
    "mpc.coordinator.v1.JoinSessionRequest",
    "mpc.coordinator.v1.GetRosterRequest",
    "mpc.coordinator.v1.WatchSessionRequest",
    "mpc.coordinator.v1.ReportCompletionRequest",
    "mpc.coordinator.v1.ReportFailureRequest",
    "mpc.router.v1.MPCMessage",
    "mpc.router.v1.RouteMessageRequest",
    "mpc.router.v1.SubscribeMessagesRequest",
    "mpc.router.v1.FetchMessagesRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    collect(Path::new("proto"), &mut files)?;
    files.sort();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    if files.is_empty() {
        std::fs::write(out_dir.join("mod.rs"), "")?;
        return Ok(());
    }
    let fds = protox::compile(&files, ["proto"])?;
    tonic_prost_build::configure()
        // Messages that carry join tokens or ciphertext get hand-written `Debug` impls
        // (`src/pb_debug.rs`) that redact them, so a stray `{:?}` never logs a secret.
        .skip_debug(REDACTED_DEBUG)
        .build_client(true)
        .build_server(true)
        .include_file("mod.rs")
        .compile_fds(fds)?;
    Ok(())
}
