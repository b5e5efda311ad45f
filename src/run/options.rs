//! How runs go, whatever the command: where manifests are kept locally,
//! how long the lock lives, how close to a time limit work still starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches};

use crate::error::{Error, Result};
use crate::manifest::local_dir;

const DEFAULT_LOCK_TTL_SECS: u64 = 900;
const DEFAULT_DEADLINE_MARGIN_SECS: u64 = 60;

/// Where the binary runs; it decides the defaults of the directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cli,
    Lambda,
}

/// The run options, exactly as given in the environment or on the command line.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// Directory for the local copies of the manifests (default: a private
    /// per-user directory, ~/.local/state/s3-kms-sync; /tmp under Lambda).
    #[arg(long, env = "SYNC_MANIFEST_DIR")]
    pub manifest_dir: Option<PathBuf>,
    /// Lifetime of the run lock in seconds; a live run renews it, a crashed one lets it expire.
    #[arg(long, env = "SYNC_LOCK_TTL_SECS", default_value_t = DEFAULT_LOCK_TTL_SECS)]
    pub lock_ttl_secs: u64,
    /// Under Lambda, stop starting files this many seconds before the time limit.
    #[arg(long, env = "SYNC_DEADLINE_MARGIN_SECS", default_value_t = DEFAULT_DEADLINE_MARGIN_SECS)]
    pub deadline_margin_secs: u64,
}

/// The run options of a command that takes no lock.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Run")]
pub struct NoLockArgs {
    /// Directory for the local copies of the manifests (default: a private
    /// per-user directory, ~/.local/state/s3-kms-sync; /tmp under Lambda).
    #[arg(long, env = "SYNC_MANIFEST_DIR")]
    pub manifest_dir: Option<PathBuf>,
}

/// The run flags a command offers: the lock's only where it takes one.
pub trait RunSettings: Args + FromArgMatches {
    fn into_run_args(self) -> RunArgs;
}

impl RunSettings for RunArgs {
    fn into_run_args(self) -> RunArgs {
        self
    }
}

impl RunSettings for NoLockArgs {
    fn into_run_args(self) -> RunArgs {
        RunArgs {
            manifest_dir: self.manifest_dir,
            lock_ttl_secs: DEFAULT_LOCK_TTL_SECS,
            deadline_margin_secs: DEFAULT_DEADLINE_MARGIN_SECS,
        }
    }
}

/// The validated run options.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub manifest_dir: PathBuf,
    /// Where it runs: what a message names as the fix.
    pub mode: Mode,
    pub lock_ttl: Duration,
    pub deadline_margin: Duration,
}

impl RunOptions {
    pub fn from_args(args: RunArgs, mode: Mode) -> Result<Self> {
        let manifest_dir = match (args.manifest_dir, mode) {
            (Some(dir), _) => {
                local_dir::prepare(&dir)?;
                dir
            }
            // The function's /tmp is its own; nobody else writes there.
            (None, Mode::Lambda) => PathBuf::from("/tmp"),
            (None, Mode::Cli) => local_dir::private_default()?,
        };
        if args.lock_ttl_secs < 3 {
            return Err(Error::Config(
                "the lock lifetime must be at least 3 seconds: set SYNC_LOCK_TTL_SECS or pass --lock-ttl-secs".into(),
            ));
        }
        Ok(RunOptions {
            manifest_dir,
            mode,
            lock_ttl: Duration::from_secs(args.lock_ttl_secs),
            deadline_margin: Duration::from_secs(args.deadline_margin_secs),
        })
    }
}
