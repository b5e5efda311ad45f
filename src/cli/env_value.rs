//! A bad value that came from an environment variable is reported by the
//! variable's name: clap names only the flag, which the user never typed.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The error's text, with the variable named where the bad value came from
/// the environment; `None` when it did not.
pub fn explained(err: &clap::Error, command: &clap::Command, argv: &[String]) -> Option<String> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.strip_prefix("--")?.split(' ').next()?;
    let flag = format!("--{long}");
    let typed = argv
        .iter()
        .any(|a| a == &flag || a.starts_with(&format!("{flag}=")));
    if typed {
        return None;
    }
    // The subcommand run decides: `--include` reads SYNC_INCLUDE for sync
    // and SYNC_RESTORE_INCLUDE for restore.
    let invoked = argv.iter().skip(1).find_map(|a| command.find_subcommand(a));
    let variable = env_of(invoked.unwrap_or(command), long)?;
    std::env::var_os(&variable)?;
    let text = err.render().to_string();
    Some(text.replacen(
        &format!("'{shown}'"),
        &format!("{variable} (an environment variable; the flag is {flag})"),
        1,
    ))
}

/// The variable of the flag `--long` of `command`.
fn env_of(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
}
