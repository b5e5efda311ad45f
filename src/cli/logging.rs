//! Where the CLI's log goes and how it reads: stderr, plain when it is not
//! a terminal, short, and as loud as `-q` and `-v` ask.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::run::progress::{self, Display};

/// The SDK's own warnings (a region looked up in IMDS, say) are noise
/// beside the one-line error that names the cause; its request dumps are
/// for `-vv`.
const QUIET_SDK: &str = "aws_config=error,aws_smithy_runtime=error";

/// The filter for `-q` (`quiet`) and `-v` (`verbose`) counts; RUST_LOG,
/// when set, wins.
pub fn filter(quiet: u8, verbose: u8) -> String {
    match (quiet, verbose) {
        (0, 0) => format!("info,{QUIET_SDK}"),
        (1, _) => format!("warn,{QUIET_SDK}"),
        (_, 0) => "error".into(),
        (_, 1) => format!("info,s3_kms_sync=debug,{QUIET_SDK}"),
        (_, 2) => "debug".into(),
        _ => "trace".into(),
    }
}

/// Sets the process's logger and how progress is shown.
pub fn init(quiet: u8, verbose: u8) {
    let terminal = std::io::stderr().is_terminal();
    let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    progress::set_display(match (quiet, terminal) {
        (1.., _) => Display::Off,
        (0, true) => Display::Bar,
        (0, false) => Display::Log,
    });
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter(quiet, verbose)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        // Module paths help whoever debugs, and nobody else.
        .with_target(verbose > 0)
        .with_writer(|| AroundTheBar)
        .init();
}

/// stderr, with the progress bar moved out of the way of each line.
struct AroundTheBar;

impl Write for AroundTheBar {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        progress::suspended(|| std::io::stderr().write_all(line))?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_and_verbose_move_the_level() {
        assert!(filter(0, 0).starts_with("info,"));
        assert!(filter(1, 0).starts_with("warn,"));
        assert_eq!(filter(2, 0), "error");
        assert!(filter(0, 1).contains("s3_kms_sync=debug"));
        assert!(filter(0, 1).contains("aws_smithy_runtime=error"));
        assert_eq!(filter(0, 2), "debug");
    }
}
