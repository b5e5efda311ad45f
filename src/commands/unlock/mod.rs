//! `unlock`: removes the prefix's lock when the run that took it is gone.
//! A lock whose lease has expired (by S3's clock, as the lease judges it)
//! is taken over and released; a live one is left alone and its holder
//! named, unless `--force` says its run is known to be gone.

use clap::Args;
use serde::Serialize;

use crate::config::Options;
use crate::error::Result;
use crate::run::lease::{self, Acquired, Holder};
use crate::run::{Mode, RunContext, RunOptions, hold};
use crate::store::Store;

/// The options of `unlock`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct UnlockArgs {
    /// Remove the lock even while its lease is live: only when its run is
    /// known to be gone (a killed process on another machine, say).
    #[arg(long)]
    pub force: bool,
}

/// The validated options of `unlock`.
#[derive(Debug, Clone)]
pub struct UnlockOptions {
    pub force: bool,
}

impl Options for UnlockOptions {
    type Args = UnlockArgs;
    type Run = crate::run::RunArgs;

    fn from_args(args: UnlockArgs, _mode: Mode) -> Result<Self> {
        Ok(UnlockOptions { force: args.force })
    }
}

/// What `unlock` found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Unlocked {
    /// No lock was there.
    Free,
    /// The lock's lease had expired: it was taken over and released.
    Removed { holder: Option<Holder> },
    /// A live lock removed by `--force`.
    Forced { holder: Option<Holder> },
    /// A live lock left alone.
    Held { holder: Holder },
}

pub async fn run(
    store: &Store,
    prefix: &str,
    run_options: &RunOptions,
    options: &UnlockOptions,
) -> Result<Unlocked> {
    let run = RunContext::start(None);
    let before = lease::holder(store, prefix).await?;
    if before.is_none() {
        return Ok(Unlocked::Free);
    }
    match hold::take(store, prefix, &run.id, run_options.lock_ttl).await? {
        Acquired::Held(taken) => {
            lease::release(store, &taken).await?;
            Ok(Unlocked::Removed { holder: before })
        }
        Acquired::Busy(_) if options.force => Ok(Unlocked::Forced {
            holder: lease::break_lock(store, prefix).await?,
        }),
        Acquired::Busy(holder) => Ok(Unlocked::Held { holder }),
    }
}
