//! One invocation: its payload to a command, the command run against the
//! invocation's deadline, and the run's metrics printed for CloudWatch.

use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use super::deadline::stop_at;
use super::{Function, Invocation};
use crate::commands;
use crate::commands::audit::{AuditArgs, AuditOptions, AuditReport};
use crate::commands::forget::ForgetReport;
use crate::commands::sync::sharded::plan::{PlanArgs, PlanOptions, PlanOutput};
use crate::commands::sync::sharded::{merge, plan};
use crate::commands::verify::{VerifyOptions, VerifyReport};
use crate::config::{Options, args_from_env};
use crate::error::Result;
use crate::manifest::Summary;
use crate::run::Mode;
use crate::run::metrics;

/// What an invocation returns: the command's summary or report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Sync(Summary),
    Verify(VerifyReport),
    Audit(AuditReport),
    Plan(PlanOutput),
    Forget(ForgetReport),
}

impl Output {
    /// The sync summary, if this was a sync.
    pub fn summary(self) -> Option<Summary> {
        match self {
            Output::Sync(summary) => Some(summary),
            Output::Verify(_) | Output::Audit(_) | Output::Plan(_) | Output::Forget(_) => None,
        }
    }
}

/// Handles one invocation.
pub async fn handle(function: &Function, event: LambdaEvent<Value>) -> Result<Output> {
    let invocation = Invocation::from_event(&event.payload)?;
    info!(request_id = %event.context.request_id, deadline_ms = event.context.deadline, ?invocation, "invocation");
    let config = &function.config;
    let stop_at = stop_at(&event.context, config.run.deadline_margin);
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let now_ms = chrono::Utc::now().timestamp_millis();
    // The EMF line goes to stdout, where Lambda forwards it to CloudWatch Logs.
    // Only a backup needs the source; verify and audit run without it.
    let sync = match &invocation {
        Invocation::Sync(_) | Invocation::Plan(_) | Invocation::Merge(_) => {
            Some(config.command.with_source_checked()?)
        }
        Invocation::Verify(_) | Invocation::Audit(_) | Invocation::Forget(_) => None,
    };
    let sync = sync.as_ref().unwrap_or(&config.command);
    match &invocation {
        Invocation::Sync(request) => {
            // Boxed, as each command below: their futures are large, and a
            // debug build's stack holds the handler's whole future.
            let summary = Box::pin(commands::sync::run(
                &function.store,
                &config.target.prefix,
                &config.run,
                sync,
                request,
                stop_at,
            ))
            .await?;
            // A shard is part of a run: the merge reports the run's metrics.
            if !summary.dry_run && request.shard.is_none() {
                println!("{}", metrics::emf(&summary, &name, now_ms));
            }
            Ok(Output::Sync(summary))
        }
        Invocation::Plan(_) => {
            let options = PlanOptions::from_args(args_from_env::<PlanArgs>()?, Mode::Lambda)?;
            let output = Box::pin(plan::run(
                &function.store,
                &config.target.prefix,
                sync,
                &options,
            ))
            .await?;
            Ok(Output::Plan(output))
        }
        Invocation::Merge(request) => {
            let summary = Box::pin(merge::run(
                &function.store,
                &config.target.prefix,
                &config.run,
                sync,
                request,
            ))
            .await?;
            println!("{}", metrics::emf(&summary, &name, now_ms));
            Ok(Output::Sync(summary))
        }
        Invocation::Verify(request) => {
            let options = VerifyOptions {
                concurrency: config.command.concurrency,
            };
            let report =
                commands::verify::run(&function.store, &config.target.prefix, &options, request)
                    .await?;
            println!("{}", report.emf(&name, now_ms));
            Ok(Output::Verify(report))
        }
        Invocation::Forget(options) => {
            let report = Box::pin(commands::forget::run(
                &function.store,
                &config.target.prefix,
                &config.run,
                options,
                stop_at,
            ))
            .await?;
            println!("{}", report.emf(&name, now_ms));
            Ok(Output::Forget(report))
        }
        Invocation::Audit(request) => {
            let options = AuditOptions::from_args(args_from_env::<AuditArgs>()?, Mode::Lambda)?;
            let report =
                commands::audit::run(&function.store, &config.target.prefix, &options, request)
                    .await?;
            println!("{}", report.emf(&name, now_ms));
            Ok(Output::Audit(report))
        }
    }
}
