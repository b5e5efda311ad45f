//! The options of `forget`: restic's `--keep-*` policy, whether to prune,
//! and the grace an unreferenced version gets before it is deleted.

use clap::Args;
use serde::Deserialize;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::retention::{Count, Policy, Span};
use crate::run::Mode;

/// How long a version stays once no kept snapshot needs it, unless told.
pub const DEFAULT_GRACE: &str = "7d";

/// The fields a Lambda `forget` event accepts.
pub const FIELDS: &str = "keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within, prune, dry_run, keep_deleted_within";

/// The options of `forget`, as given: flags, or the fields of a Lambda event.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub keep_last: Option<Count>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub keep_hourly: Option<Count>,
    /// … of each of the N newest days (`unlimited`: every day).
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub keep_daily: Option<Count>,
    /// … of each of the N newest ISO weeks.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub keep_weekly: Option<Count>,
    /// … of each of the N newest months.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub keep_monthly: Option<Count>,
    /// … of each of the N newest years.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub keep_yearly: Option<Count>,
    /// Keep every snapshot within this span (such as 1y6m7d12h) of the newest.
    #[arg(long, value_name = "SPAN")]
    #[serde(default)]
    pub keep_within: Option<Span>,
    /// Then delete the object versions no kept snapshot references.
    #[arg(long)]
    #[serde(default)]
    pub prune: bool,
    /// Print what would be kept, forgotten and deleted, and why; change nothing.
    #[arg(long)]
    #[serde(default)]
    pub dry_run: bool,
    /// A version no kept snapshot references is deleted only once it has
    /// not been the current object for this long.
    #[arg(long, value_name = "SPAN", default_value = DEFAULT_GRACE)]
    #[serde(default)]
    pub keep_deleted_within: Option<Span>,
}

/// The validated options of `forget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetOptions {
    pub policy: Policy,
    pub prune: bool,
    pub dry_run: bool,
    pub grace: Span,
    /// Whether an empty prefix was asked for by name (`--prefix ''`): only
    /// then may a prune sweep the whole bucket.
    pub whole_bucket: bool,
}

impl Options for ForgetOptions {
    type Args = ForgetArgs;
    type Run = crate::run::RunArgs;

    fn from_args(args: ForgetArgs, _mode: Mode) -> Result<Self> {
        let policy = Policy {
            last: args.keep_last,
            hourly: args.keep_hourly,
            daily: args.keep_daily,
            weekly: args.keep_weekly,
            monthly: args.keep_monthly,
            yearly: args.keep_yearly,
            within: args.keep_within,
        };
        if policy.is_empty() {
            return Err(Error::Config(
                "forget needs a policy: pass at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within (in an event: keep_daily and so on)".into(),
            ));
        }
        let grace = match args.keep_deleted_within {
            Some(span) => span,
            None => DEFAULT_GRACE.parse().map_err(Error::Config)?,
        };
        Ok(ForgetOptions {
            policy,
            prune: args.prune,
            dry_run: args.dry_run,
            grace,
            whole_bucket: false,
        })
    }
}

impl ForgetOptions {
    /// From a Lambda event's fields.
    pub fn from_event(fields: serde_json::Value) -> Result<Self> {
        let args = ForgetArgs::deserialize(fields)
            .map_err(|err| Error::Event(format!("{err}; a forget request accepts {FIELDS}")))?;
        Self::from_args(args, Mode::Lambda)
    }
}
