//! Counters shared by a command's workers, logged now and then on a long run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::{Instrument, info};

use crate::manifest::{FileRecord, FileStatus};

/// How often a long run logs its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of file content read from disk.
    pub bytes_read: AtomicU64,
    done: AtomicU64,
    /// Files sent (sync) or written (restore), and their bytes.
    moved: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    pub fn read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn count(&self, record: &FileRecord) {
        match record.status {
            FileStatus::Uploaded => self.count_moved(record.size_bytes),
            FileStatus::Failed => self.count_failed(),
            FileStatus::Skipped
            | FileStatus::Reencrypted
            | FileStatus::WouldUpload
            | FileStatus::Carried
            | FileStatus::Recorded => self.count_done(),
        }
    }

    /// A file sent or written, of `bytes`.
    pub fn count_moved(&self, bytes: u64) {
        self.moved.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.count_done();
    }

    pub fn count_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.count_done();
    }

    /// A file left as it was.
    pub fn count_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Logs the counters every `period` until the handle is aborted; `moved`
    /// names what a moved file is (`uploaded`, `restored`).
    pub fn report_every(
        self: &Arc<Self>,
        period: Duration,
        total: usize,
        moved: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        let progress = Arc::clone(self);
        tokio::spawn(
            async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    ticks.tick().await;
                    info!(
                        done = progress.done.load(Ordering::Relaxed),
                        total,
                        moved,
                        files = progress.moved.load(Ordering::Relaxed),
                        bytes = progress.bytes.load(Ordering::Relaxed),
                        failed = progress.failed.load(Ordering::Relaxed),
                        "progress"
                    );
                }
            }
            .in_current_span(),
        )
    }
}
