//! One invocation: its payload to a command, the command run against the
//! invocation's deadline, and the run's metrics printed for CloudWatch.

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::info;

use super::deadline::stop_at;
use super::{Function, Invocation};
use crate::commands;
use crate::error::Result;
use crate::manifest::Summary;
use crate::run::metrics;

/// Handles one invocation.
pub async fn handle(function: &Function, event: LambdaEvent<Value>) -> Result<Summary> {
    let invocation = Invocation::from_event(&event.payload)?;
    info!(request_id = %event.context.request_id, deadline_ms = event.context.deadline, ?invocation, "invocation");
    let config = &function.config;
    let stop_at = stop_at(&event.context, config.run.deadline_margin);
    let summary = match &invocation {
        Invocation::Sync(request) => {
            commands::sync::run(
                &function.store,
                &config.target.prefix,
                &config.run,
                &config.command,
                request,
                stop_at,
            )
            .await?
        }
    };
    if !summary.dry_run {
        emit_metrics(&summary);
    }
    Ok(summary)
}

/// Prints the run's EMF line on stdout, where Lambda forwards it to CloudWatch Logs.
fn emit_metrics(summary: &Summary) {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let document = metrics::emf(summary, &function, chrono::Utc::now().timestamp_millis());
    println!("{document}");
}
