//! The test's child processes: `mpc` runs with exactly the environment given (nothing inherited
//! from the developer's shell), output captured to files, and killed on drop so that a failing
//! test leaves nothing running.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Runs an `mpc` command to completion and returns its trimmed stdout (for `mpc keys …` and
/// `mpc party identity`, whose output is a key).
pub fn mpc_output(args: &[&str], env: &BTreeMap<String, String>) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mpc"))
        .args(args)
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mpc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// One running `mpc serve` process.
pub struct Proc {
    pub name: String,
    child: Child,
    pub stderr: PathBuf,
}

impl Proc {
    /// Starts `mpc <args>` with `env` only; output goes to `<dir>/<name>.<incarnation>.{out,err}`.
    pub fn spawn(
        name: &str,
        incarnation: u32,
        args: &[&str],
        env: &BTreeMap<String, String>,
        dir: &Path,
    ) -> Proc {
        let stdout = dir.join(format!("{name}.{incarnation}.out"));
        let stderr = dir.join(format!("{name}.{incarnation}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_mpc"))
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Proc {
            name: name.to_owned(),
            child,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILL, then reap: the process gets no chance to clean up.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().unwrap()
    }

    /// SIGTERM, then wait (up to a minute) for the process to exit by itself.
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.name);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of its stderr (for failure messages).
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr, lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a process did not become ready.
pub enum NotReady {
    /// It exited (with its stderr tail).
    Exited(ExitStatus, String),
    /// Still running, but `/readyz` never said yes before the deadline.
    Timeout(String),
}

/// Polls `<base>/readyz` until it answers 2xx, the process exits, or the deadline passes.
pub async fn wait_ready(
    client: &reqwest::Client,
    proc: &mut Proc,
    base: &str,
    within: Duration,
) -> Result<(), NotReady> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = proc.exited() {
            return Err(NotReady::Exited(status, proc.stderr_tail(30)));
        }
        let last = match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                format!("{status} {}", r.text().await.unwrap_or_default())
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(NotReady::Timeout(format!(
                "{}: /readyz said {last}\n{}",
                proc.name,
                proc.stderr_tail(30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Distinct free loopback ports: all bound at once (so no two are the same), then released for
/// the services to take. Another process could take one in between; the caller retries a
/// service whose bind failed with fresh ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}
