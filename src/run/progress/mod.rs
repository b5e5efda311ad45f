//! Counters shared by a command's workers, shown while a run is long: a
//! bar on a terminal, a log line now and then elsewhere.

mod bar;
mod line;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tracing::Instrument;

use crate::manifest::{FileRecord, FileStatus};
pub use bar::suspended;

/// How often a long run logs its progress off a terminal (the first line
/// comes sooner, so a short wait is never silent).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How progress is shown, process-wide: the CLI picks it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Display {
    /// A log line every [`PROGRESS_EVERY`] (Lambda, cron, a pipe).
    Log = 0,
    /// A bar on stderr, redrawn in place (a person at a terminal).
    Bar = 1,
    /// Nothing (`-q`).
    Off = 2,
}

static DISPLAY: AtomicU8 = AtomicU8::new(Display::Log as u8);

/// Sets how every later run shows its progress.
pub fn set_display(display: Display) {
    DISPLAY.store(display as u8, Ordering::Relaxed);
}

fn display() -> Display {
    match DISPLAY.load(Ordering::Relaxed) {
        1 => Display::Bar,
        2 => Display::Off,
        _ => Display::Log,
    }
}

#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of file content read from disk.
    bytes_read: AtomicU64,
    done: AtomicU64,
    /// Files sent (sync) or written (restore), and their bytes.
    moved: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    /// Bytes of large files sent so far, part by part, whose files are
    /// not done yet: the bar moves during a long part stream.
    in_flight: AtomicU64,
    /// Files to do: known at the start, or counted as a walk finds them.
    total: AtomicU64,
    total_bytes: AtomicU64,
    /// Whether `total` is final.
    counted: AtomicBool,
    /// Files expected before they are all found (the last snapshot's).
    expected: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub done: u64,
    pub moved: u64,
    pub failed: u64,
    pub bytes: u64,
    pub bytes_read: u64,
    pub total: u64,
    pub total_bytes: u64,
    pub counted: bool,
    pub expected: u64,
}

impl Progress {
    /// Counters for `files` files of `bytes` bytes in all, known up front.
    pub fn of(files: u64, bytes: u64) -> Arc<Self> {
        let progress = Progress::default();
        progress.found(files, bytes);
        progress.counted.store(true, Ordering::Relaxed);
        Arc::new(progress)
    }

    /// Counters whose total is found as the run goes ([`Progress::found`]).
    pub fn counting() -> Arc<Self> {
        Arc::default()
    }

    /// `files` more to do, of `bytes`.
    pub fn found(&self, files: u64, bytes: u64) {
        self.total.fetch_add(files, Ordering::Relaxed);
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// About `files` are expected (the last snapshot held that many): the
    /// share done is estimated from it until the total is known.
    pub fn expect(&self, files: u64) {
        self.expected.store(files, Ordering::Relaxed);
    }

    /// Nothing more will be found: the total is final.
    pub fn all_found(&self) {
        self.counted.store(true, Ordering::Relaxed);
    }

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
            | FileStatus::Stored
            | FileStatus::Recorded => self.count_done(),
        }
    }

    /// A file sent or written, of `bytes`.
    pub fn count_moved(&self, bytes: u64) {
        self.moved.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.count_done();
    }

    /// Counts the parts of one large file as they are sent, until the
    /// file is counted whole (or fails) and the returned guard is dropped.
    pub fn sending(&self) -> Sending<'_> {
        Sending {
            progress: self,
            sent: AtomicU64::new(0),
        }
    }

    pub fn count_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.count_done();
    }

    /// A file left as it was.
    pub fn count_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            done: self.done.load(Ordering::Relaxed),
            moved: self.moved.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed) + self.in_flight.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            counted: self.counted.load(Ordering::Relaxed),
            expected: self.expected.load(Ordering::Relaxed),
        }
    }

    /// Shows the counters until the returned handle is dropped; `moved`
    /// names what a moved file is (`uploaded`, `restored`).
    pub fn show(self: &Arc<Self>, moved: &'static str) -> Shown {
        let progress = Arc::clone(self);
        let task = match display() {
            Display::Off => None,
            Display::Log => Some(tokio::spawn(line::every(progress, moved).in_current_span())),
            Display::Bar => Some(tokio::spawn(bar::draw(progress, moved))),
        };
        Shown { task }
    }
}

/// The parts of one file sent so far: counted in the run's bytes while
/// the file is under way, and taken back when it is done.
#[derive(Debug)]
pub struct Sending<'a> {
    progress: &'a Progress,
    sent: AtomicU64,
}

impl Sending<'_> {
    pub fn sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        self.progress.in_flight.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        let sent = self.sent.load(Ordering::Relaxed);
        self.progress.in_flight.fetch_sub(sent, Ordering::Relaxed);
    }
}

/// Progress being shown; dropping it stops the showing and clears a bar.
#[derive(Debug)]
pub struct Shown {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Shown {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        bar::clear();
    }
}

impl Snapshot {
    /// The files to do: the total once known, else the estimate.
    pub fn goal(&self) -> Option<u64> {
        if self.counted {
            Some(self.total)
        } else {
            (self.expected > 0).then_some(self.expected.max(self.total))
        }
    }

    /// The share done, in percent, once the total is known or estimated.
    pub fn percent(&self) -> Option<f64> {
        let goal = self.goal().filter(|g| *g > 0)?;
        Some(100.0 * self.done as f64 / goal as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentage_waits_for_the_total() {
        let progress = Progress::counting();
        progress.found(4, 400);
        progress.count_done();
        assert_eq!(progress.snapshot().percent(), None);
        progress.expect(10);
        assert_eq!(progress.snapshot().percent(), Some(10.0));
        progress.all_found();
        assert_eq!(progress.snapshot().percent(), Some(25.0));
        let known = Progress::of(2, 10);
        known.count_moved(5);
        let seen = known.snapshot();
        assert_eq!((seen.percent(), seen.moved, seen.bytes), (Some(50.0), 1, 5));
    }
}
