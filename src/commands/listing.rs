//! What the commands that list snapshots and files share: how a path glob
//! is given, and how they print (JSON for scripts, when stdout is not a
//! terminal or `--json` is given; a person's units otherwise).

use globset::{Glob, GlobMatcher};

use crate::error::{Error, Result};

/// A glob over paths relative to the backed-up directory.
pub fn path_glob(pattern: &str) -> Result<GlobMatcher> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|err| Error::Config(format!("glob {pattern:?}: {err}")))
}

pub use crate::units::human_bytes;

/// Whether output is for a script: asked for, or stdout is not a terminal.
pub fn json_wanted(asked: bool) -> bool {
    use std::io::IsTerminal;
    asked || !std::io::stdout().is_terminal()
}
