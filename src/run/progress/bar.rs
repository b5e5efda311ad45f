//! Progress on a terminal: one bar on stderr, redrawn in place. Log lines
//! written meanwhile hide it for a moment ([`suspended`]), so neither
//! garbles the other.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;
use super::line::brief;

static CURRENT: Mutex<Option<ProgressBar>> = Mutex::new(None);

const REDRAW_EVERY: Duration = Duration::from_millis(200);

pub async fn draw(progress: Arc<Progress>, moved: &'static str) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {bar:16} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
    let started = Instant::now();
    let mut ticks = tokio::time::interval(REDRAW_EVERY);
    loop {
        ticks.tick().await;
        let seen = progress.snapshot();
        bar.set_length(seen.goal().unwrap_or(seen.total).max(seen.done));
        bar.set_position(seen.done);
        bar.set_message(brief(&seen, moved, started.elapsed()));
    }
}

/// Runs `write` with the bar (if one is drawn) out of the way.
pub fn suspended<R>(write: impl FnOnce() -> R) -> R {
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match current {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Takes the bar off the screen for good.
pub fn clear() {
    if let Some(bar) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bar.finish_and_clear();
    }
}
