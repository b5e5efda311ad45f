//! The Lambda entry point: settings and client are built once at cold start;
//! each invocation turns its payload into a request and runs the engine.

use std::time::{Duration, Instant};

use lambda_runtime::{Context, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::{info, warn};

use crate::config::{Mode, Settings, SyncArgs};
use crate::error::Result;
use crate::manifest::Summary;
use crate::metrics;
use crate::remote::s3_client;
use crate::request::RunRequest;
use crate::sync::Engine;

/// Handles one invocation.
pub async fn handle(engine: &Engine, event: LambdaEvent<Value>) -> Result<Summary> {
    let request = RunRequest::from_event(&event.payload)?;
    info!(request_id = %event.context.request_id, deadline_ms = event.context.deadline, ?request, "invocation");
    let stop_at = stop_at(&event.context, engine.settings().deadline_margin);
    let summary = engine.run_until(&request, stop_at).await?;
    if !summary.dry_run {
        emit_metrics(&summary);
    }
    Ok(summary)
}

/// When to stop starting files: the invocation's deadline less the margin
/// that in-flight uploads and the manifest need. The margin never takes more
/// than a quarter of the time left, so a short timeout still gets work done.
/// A deadline that is not in the future (local emulators send one) sets no limit.
fn stop_at(context: &Context, margin: Duration) -> Option<Instant> {
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

/// Prints the run's EMF line on stdout, where Lambda forwards it to CloudWatch Logs.
fn emit_metrics(summary: &Summary) {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let document = metrics::emf(summary, &function, chrono::Utc::now().timestamp_millis());
    println!("{document}");
}

/// Serves the Lambda runtime API until the runtime shuts the process down.
/// A bad configuration fails the cold start, so Lambda reports an init error
/// naming the variable to fix.
pub async fn serve() -> std::result::Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let args = SyncArgs::from_env()?;
    let settings = Settings::from_args(args, Mode::Lambda)?;
    let engine = Engine::new(s3_client(settings.max_attempts).await, settings);
    let engine = &engine;
    lambda_runtime::run(service_fn(move |event| handle(engine, event))).await
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
