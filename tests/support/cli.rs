//! Running the built binary as a user does: in a pipe, or at a terminal.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_s3-kms-sync");

/// The CLI with `args`, in a clean environment plus `env`; stdout and
/// stderr are pipes.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    clean(&mut command);
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run the CLI")
}

/// The CLI under a pseudo-terminal (`script`): what a person sees, stdout
/// and stderr together, as the terminal received them.
pub fn in_terminal(args: &[&str], env: &[(&str, &str)]) -> Output {
    let line = std::iter::once(BINARY)
        .chain(args.iter().copied())
        .map(|word| {
            assert!(!word.contains('\''), "{word}");
            format!("'{word}'")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = Command::new("script");
    clean(&mut command);
    command
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .envs(env.iter().copied())
        .output()
        .expect("run the CLI under script(1)")
}

/// The CLI with `args` started in a clean environment plus `env`, its
/// stdout and stderr piped.
pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(BINARY);
    clean(&mut command);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the CLI")
}

/// Once `seen` reaches `at_least` (within a minute, or `what` never
/// began), sends `signal` (`INT`, `TERM`) to `child`; what it printed.
pub async fn signal_after(
    child: Child,
    seen: &AtomicU32,
    at_least: u32,
    signal: &str,
    what: &str,
) -> Output {
    let waited = Instant::now();
    while seen.load(Ordering::SeqCst) < at_least {
        assert!(waited.elapsed().as_secs() < 60, "{what} never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait_with_output().unwrap()
}

/// Nothing of the caller's AWS or tool settings reaches the CLI.
fn clean(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("SYNC_") || name.starts_with("AWS_") || name == "XDG_STATE_HOME" {
            command.env_remove(name);
        }
    }
}

/// The environment that points the CLI at moto, plus `more`.
pub fn moto_env<'a>(endpoint: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    env.extend_from_slice(more);
    env
}
