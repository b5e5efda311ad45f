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

/// Bytes in binary units, as `ls -h` writes them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Whether output is for a script: asked for, or stdout is not a terminal.
pub fn json_wanted(asked: bool) -> bool {
    use std::io::IsTerminal;
    asked || !std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
