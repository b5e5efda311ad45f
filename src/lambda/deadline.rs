//! The invocation's deadline, as the time to stop starting work.

use std::time::{Duration, Instant};

use lambda_runtime::Context;
use tracing::warn;

/// When to stop starting files: the invocation's deadline less the margin
/// that in-flight uploads and the manifest need. The margin never takes more
/// than a quarter of the time left, so a short timeout still gets work done.
/// A deadline that is not in the future (local emulators send one) sets no limit.
pub fn stop_at(context: &Context, margin: Duration) -> Option<Instant> {
    let deadline_ms = i64::try_from(context.deadline).ok()?;
    let left_ms = deadline_ms - chrono::Utc::now().timestamp_millis();
    let Ok(left_ms) = u64::try_from(left_ms) else {
        warn!(
            deadline_ms,
            "the invocation deadline has passed already; running without a time limit"
        );
        return None;
    };
    let left = Duration::from_millis(left_ms);
    Some(Instant::now() + left.saturating_sub(margin.min(left / 4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_with(left: Duration) -> Context {
        let mut context = Context::default();
        context.deadline = (chrono::Utc::now().timestamp_millis() + left.as_millis() as i64) as u64;
        context
    }

    #[test]
    fn the_margin_is_kept_before_the_deadline() {
        let stop = stop_at(
            &context_with(Duration::from_secs(900)),
            Duration::from_secs(60),
        )
        .unwrap();
        let until = stop.duration_since(Instant::now());
        assert!(
            until > Duration::from_secs(835) && until <= Duration::from_secs(840),
            "{until:?}"
        );
    }

    #[test]
    fn a_short_timeout_keeps_three_quarters_for_work() {
        let stop = stop_at(
            &context_with(Duration::from_secs(30)),
            Duration::from_secs(60),
        )
        .unwrap();
        let until = stop.duration_since(Instant::now());
        assert!(
            until > Duration::from_secs(22) && until <= Duration::from_millis(22_500),
            "{until:?}"
        );
    }

    #[test]
    fn no_deadline_or_one_in_the_past_means_no_stop() {
        assert!(stop_at(&Context::default(), Duration::from_secs(60)).is_none());
        let mut relative = Context::default();
        relative.deadline = 600_000;
        assert!(stop_at(&relative, Duration::from_secs(60)).is_none());
    }
}
