//! What every run of every command shares: its identity and clock, the time
//! limit, the lease that makes it the only writer of its prefix, progress
//! counters and the metrics it reports.

pub mod hold;
pub mod interrupt;
pub mod lease;
pub mod metrics;
pub mod options;
pub mod progress;
pub mod shard;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

pub use hold::exclusively;
pub use lease::Standing;
pub use options::{Mode, NoLockArgs, RunArgs, RunOptions, RunSettings};

/// One run's identity and clock.
#[derive(Debug)]
pub struct RunContext {
    pub id: String,
    pub started: DateTime<Utc>,
    pub clock: Instant,
    /// No work is started after this instant (the Lambda time limit less a margin).
    pub stop_at: Option<Instant>,
    /// No work is started once the lease is lost.
    pub standing: Arc<Standing>,
}

impl RunContext {
    pub fn start(stop_at: Option<Instant>) -> Self {
        RunContext {
            id: uuid::Uuid::new_v4().to_string(),
            started: Utc::now(),
            clock: Instant::now(),
            stop_at,
            standing: Arc::default(),
        }
    }

    /// A run that goes on from a step taken elsewhere (a shard of a sharded
    /// run): the run's id, this step's own clock.
    pub fn resume(id: &str, stop_at: Option<Instant>) -> Self {
        RunContext {
            id: id.to_owned(),
            ..RunContext::start(stop_at)
        }
    }

    /// Whether a piece of work (a file) may still be started.
    pub fn may_start(&self) -> bool {
        self.gate().open()
    }

    /// The same test, to be carried to another thread (the walk's).
    pub fn gate(&self) -> Gate {
        Gate {
            stop_at: self.stop_at,
            standing: Arc::clone(&self.standing),
        }
    }
}

/// Whether work may still be started: before the time limit, with the
/// lease held, and no signal asking the process to stop.
#[derive(Debug, Clone)]
pub struct Gate {
    stop_at: Option<Instant>,
    standing: Arc<Standing>,
}

impl Gate {
    pub fn open(&self) -> bool {
        self.stop_at.is_none_or(|at| Instant::now() < at)
            && !self.standing.is_lost()
            && interrupt::received().is_none()
    }
}
