//! Progress off a terminal: a log line now and then, with the share done,
//! the rate and the time left, as a person reading a log wants them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::{PROGRESS_EVERY, Progress, Snapshot};
use crate::units::{human_bytes, short_duration};

/// The first line comes after this, then one every [`PROGRESS_EVERY`].
const FIRST_AFTER: Duration = Duration::from_secs(2);

pub async fn every(progress: Arc<Progress>, moved: &'static str) {
    let started = Instant::now();
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + FIRST_AFTER, PROGRESS_EVERY);
    loop {
        ticks.tick().await;
        let seen = progress.snapshot();
        info!(
            done = seen.done,
            total = seen.total,
            failed = seen.failed,
            "progress: {}",
            describe(&seen, moved, started.elapsed())
        );
    }
}

/// "1992/5000 files (39.8%), 12 uploaded (120.5 MiB), 12.1 MiB/s, 1m20s left".
pub fn describe(seen: &Snapshot, moved: &str, elapsed: Duration) -> String {
    let files = match (seen.goal(), seen.percent()) {
        (Some(goal), Some(percent)) => {
            format!("{}/{}{goal} files ({percent:.1}%)", seen.done, about(seen))
        }
        _ => format!("{}/{}+ files (still counting)", seen.done, seen.total),
    };
    [files, rest(seen, moved, elapsed)].join(", ")
}

/// The same, short enough to sit beside a bar that shows the share.
pub fn brief(seen: &Snapshot, moved: &str, elapsed: Duration) -> String {
    let goal = seen.goal().map_or_else(
        || format!("{}+", seen.total),
        |g| format!("{}{g}", about(seen)),
    );
    format!("{}/{goal} files, {}", seen.done, rest(seen, moved, elapsed))
}

/// "~" where the total is an estimate.
fn about(seen: &Snapshot) -> &'static str {
    if seen.counted { "" } else { "~" }
}

/// What was moved, what failed, the rate and the time left.
fn rest(seen: &Snapshot, moved: &str, elapsed: Duration) -> String {
    let mut text = format!("{} {moved} ({})", seen.moved, human_bytes(seen.bytes));
    if seen.failed > 0 {
        text.push_str(&format!(", {} failed", seen.failed));
    }
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        // Bytes read to hash and send (sync), or written (restore).
        let rate = seen.bytes_read.max(seen.bytes) as f64 / secs;
        text.push_str(&format!(", {}/s", human_bytes(rate as u64)));
    }
    if let Some(left) = time_left(seen, elapsed) {
        text.push_str(&format!(", {} left", short_duration(left)));
    }
    text
}

/// The time left at the pace so far, by files, once the total is known
/// or estimated.
fn time_left(seen: &Snapshot, elapsed: Duration) -> Option<Duration> {
    let goal = seen.goal()?;
    if seen.done == 0 {
        return None;
    }
    let per_file = elapsed.as_secs_f64() / seen.done as f64;
    Some(Duration::from_secs_f64(
        per_file * goal.saturating_sub(seen.done) as f64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_share_the_rate_and_the_time_left() {
        let seen = Snapshot {
            done: 250,
            moved: 10,
            failed: 1,
            bytes: 10 * 1024 * 1024,
            bytes_read: 20 * 1024 * 1024,
            total: 1000,
            total_bytes: 0,
            counted: true,
            expected: 0,
        };
        assert_eq!(
            describe(&seen, "uploaded", Duration::from_secs(10)),
            "250/1000 files (25.0%), 10 uploaded (10.0 MiB), 1 failed, 2.0 MiB/s, 30s left"
        );
        let counting = Snapshot {
            counted: false,
            ..seen
        };
        let text = describe(&counting, "uploaded", Duration::from_secs(10));
        assert!(
            text.starts_with("250/1000+ files (still counting)"),
            "{text}"
        );
        assert!(!text.contains("left"), "{text}");
        // Estimated from the last snapshot's 500 files while 300 are found.
        let estimated = Snapshot {
            expected: 500,
            total: 300,
            ..counting
        };
        let text = describe(&estimated, "uploaded", Duration::from_secs(10));
        assert!(text.starts_with("250/~500 files (50.0%)"), "{text}");
        // 250 files took 10 s: the 250 still expected take as long.
        assert_eq!(
            brief(&estimated, "uploaded", Duration::from_secs(10)),
            "250/~500 files, 10 uploaded (10.0 MiB), 1 failed, 2.0 MiB/s, 10s left"
        );
    }
}
