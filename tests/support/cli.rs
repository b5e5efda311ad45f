//! Running the built binary as a user does: in a pipe, or at a terminal.

use std::process::{Command, Output};

/// The built binary.
pub const BINARY: &str = env!("CARGO_BIN_EXE_s3-kms-sync");

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

/// Nothing of the caller's AWS or tool settings reaches the CLI.
pub fn clean(command: &mut Command) {
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
