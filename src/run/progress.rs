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
    uploaded: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    pub fn read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn count(&self, record: &FileRecord) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match record.status {
            FileStatus::Uploaded => {
                self.uploaded.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(record.size_bytes, Ordering::Relaxed);
            }
            FileStatus::Failed => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            FileStatus::Skipped | FileStatus::WouldUpload => {}
        }
    }

    /// Logs the counters every `period` until the handle is aborted.
    pub fn report_every(
        self: &Arc<Self>,
        period: Duration,
        total: usize,
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
                        uploaded = progress.uploaded.load(Ordering::Relaxed),
                        failed = progress.failed.load(Ordering::Relaxed),
                        bytes_uploaded = progress.bytes.load(Ordering::Relaxed),
                        "progress"
                    );
                }
            }
            .in_current_span(),
        )
    }
}
