//! `replication plan|apply`: KMS-aware replication of many buckets, set up
//! from a sheet in the columns of AWS's "configure Amazon S3 bucket
//! replication at scale" post, without that script's silent failures:
//! - each rule opts SSE-KMS objects in and names the replica's key;
//! - destinations are created versioned, with public access blocked and
//!   default SSE-KMS under that key with a Bucket Key (and no location
//!   constraint in us-east-1);
//! - a configuration that could not be read is an error, and one with rules
//!   this tool did not write is a conflict, never overwritten;
//! - existing objects are replicated by S3 Batch Replication when asked.
//!
//! `plan` reads and prints; `apply` makes the changes. Both print a report as
//! JSON. A second `apply` of the same sheet reports `changed: 0`.

mod apply;
mod batch;
mod plan;
mod sheet;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::bucket::BucketAdmin;
use apply::Reconciled;
pub use batch::ReplicationJob;
pub use plan::{Change, RULE_ID_PREFIX};
pub use sheet::RowError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Print the changes that `apply` would make.
    Plan,
    /// Make them.
    Apply,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReplicationArgs {
    pub action: Action,
    /// The sheet: .xlsx (first worksheet) or .csv.
    #[arg(long)]
    pub sheet: PathBuf,
    /// The role S3 replicates as (it needs the grants the report's
    /// `role_needs` lists).
    #[arg(long, env = "SYNC_REPLICATION_ROLE_ARN")]
    pub role_arn: String,
    /// The role S3 Batch Operations assumes to replicate existing objects;
    /// without it, the CreateJob request is printed instead.
    #[arg(long, env = "SYNC_BATCH_ROLE_ARN")]
    pub batch_role_arn: Option<String>,
    #[command(flatten)]
    pub connection: crate::target::Connection,
}

/// S3 clients by region, and the region of each bucket seen.
pub struct Clients {
    shared: aws_config::SdkConfig,
    path_style: bool,
    by_region: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    regions: Mutex<HashMap<String, String>>,
}

impl Clients {
    pub fn new(shared: aws_config::SdkConfig, path_style: bool) -> Self {
        Clients {
            shared,
            path_style,
            by_region: Mutex::default(),
            regions: Mutex::default(),
        }
    }

    /// Clients whose home region's client is `client`: lets a test put a
    /// mocked client in.
    #[doc(hidden)]
    pub fn with_client(shared: aws_config::SdkConfig, client: aws_sdk_s3::Client) -> Self {
        let clients = Clients::new(shared, false);
        if let Ok(mut by_region) = clients.by_region.lock() {
            by_region.insert(clients.home(), client);
        }
        clients
    }

    /// The configured region, where a bucket's region is asked.
    fn home(&self) -> String {
        self.shared
            .region()
            .map_or("us-east-1", |r| r.as_ref())
            .to_owned()
    }

    /// KMS in `region`: where a bucket's key is described.
    pub fn kms_in(&self, region: &str) -> aws_sdk_kms::Client {
        let shared = self
            .shared
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        crate::store::kms_client_from(&shared, aws_sdk_s3::config::retry::RetryConfig::standard())
    }

    pub fn in_region(&self, region: &str) -> aws_sdk_s3::Client {
        let mut clients = self.by_region.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| crate::store::s3_client_in(&self.shared, region, self.path_style))
            .clone()
    }

    fn remember(&self, bucket: &str, region: &str) {
        if let Ok(mut regions) = self.regions.lock() {
            regions.insert(bucket.to_owned(), region.to_owned());
        }
    }

    /// The bucket's region, asked once (GetBucketLocation answers from any region).
    pub async fn region_of(&self, bucket: &str) -> Result<String> {
        if let Some(region) = self
            .regions
            .lock()
            .ok()
            .and_then(|r| r.get(bucket).cloned())
        {
            return Ok(region);
        }
        let home = self.home();
        let region = BucketAdmin::new(self.in_region(&home), bucket)
            .region()
            .await?;
        self.remember(bucket, &region);
        Ok(region)
    }

    /// The settings of a bucket, through a client in its region.
    pub async fn admin_of(&self, bucket: &str) -> Result<BucketAdmin> {
        let region = self.region_of(bucket).await?;
        Ok(BucketAdmin::new(self.in_region(&region), bucket))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Changed,
    Unchanged,
    Conflict,
    Failed,
}

/// One source bucket's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct BucketReport {
    pub source: String,
    /// The sheet rows it came from.
    pub rows: Vec<usize>,
    pub outcome: Outcome,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The IAM policy the replication role needs for this bucket's rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_needs: Option<Value>,
    /// What `role_needs` cannot know by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_needs_note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_job_id: Option<String>,
    /// The Batch Replication request to send, when no Batch Operations role was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_replication_request: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicationReport {
    pub action: &'static str,
    pub changed: u64,
    pub unchanged: u64,
    pub conflicts: u64,
    /// Buckets that failed, and rows that could not be read.
    pub failed: u64,
    pub buckets: Vec<BucketReport>,
    pub row_errors: Vec<RowError>,
}

impl ReplicationReport {
    /// Every row applied (or, for `plan`, applicable) or unchanged.
    pub fn all_done(&self) -> bool {
        self.conflicts == 0 && self.failed == 0
    }
}

/// Plans or applies the sheet. `control` creates Batch Replication jobs.
pub async fn run(
    clients: &Clients,
    control: Option<&aws_sdk_s3control::Client>,
    args: &ReplicationArgs,
) -> Result<ReplicationReport> {
    let account = account_of(&args.role_arn)?;
    let (rows, row_errors) = sheet::read(&args.sheet)?;
    let apply = args.action == Action::Apply;
    let mut buckets = Vec::new();
    for desired in plan::desired(&rows, &args.role_arn) {
        eprintln!("s3-kms-sync replication: {}", desired.source);
        let mut report = BucketReport {
            source: desired.source.clone(),
            rows: desired.rows.clone(),
            outcome: Outcome::Unchanged,
            changes: Vec::new(),
            detail: None,
            role_needs: None,
            role_needs_note: None,
            batch_job_id: None,
            batch_replication_request: None,
        };
        // A bucket with a bad row is left alone: its configuration would
        // silently lose that row's rule.
        if let Some(bad) = row_errors.iter().find(|e| e.source == desired.source) {
            report.outcome = Outcome::Failed;
            report.detail = Some(format!(
                "row {} is invalid; the bucket is left as it is",
                bad.row
            ));
            buckets.push(report);
            continue;
        }
        match apply::reconcile(clients, &desired, apply).await {
            Ok(Reconciled::Conflict(why)) => {
                report.outcome = Outcome::Conflict;
                report.detail = Some(why);
            }
            Ok(Reconciled::Changes {
                changes,
                source_region,
                source_key,
                source_locked,
                warning,
            }) => {
                report.detail = warning;
                report.role_needs = Some(plan::role_needs(
                    &desired,
                    &source_region,
                    source_key.as_deref(),
                    source_locked,
                ));
                report.role_needs_note = source_key.as_ref().map(|key| {
                    format!(
                        "kms:Decrypt names the bucket's default key, {key}; objects written under other keys replicate only if their keys are added (audit --kms-key-id {key} lists them as wrong_key)"
                    )
                });
                let newly_replicating = changes
                    .iter()
                    .any(|c| matches!(c, Change::PutReplication { .. }));
                report.outcome = if changes.is_empty() {
                    Outcome::Unchanged
                } else {
                    Outcome::Changed
                };
                report.changes = changes;
                if desired.existing_objects && newly_replicating {
                    let job = ReplicationJob {
                        account_id: account.to_owned(),
                        source: desired.source.clone(),
                        role_arn: args.batch_role_arn.clone(),
                        client_token: format!("s3-kms-sync-{}", desired.tags[plan::APPLIED_TAG]),
                        partition: crate::store::keys::partition_of_region(&source_region),
                    };
                    match (apply, control, &args.batch_role_arn) {
                        (true, Some(control), Some(role)) => {
                            match job.create(control, role).await {
                                Ok(id) => report.batch_job_id = Some(id),
                                Err(err) => {
                                    report.outcome = Outcome::Failed;
                                    report.detail = Some(format!(
                                        "replication applied, but Batch Replication did not start: {err}"
                                    ));
                                }
                            }
                        }
                        _ => report.batch_replication_request = Some(job.request()),
                    }
                }
            }
            Err(err) => {
                report.outcome = Outcome::Failed;
                report.detail = Some(err.to_string());
            }
        }
        buckets.push(report);
    }
    let count = |outcome| buckets.iter().filter(|b| b.outcome == outcome).count() as u64;
    let unattached_errors = row_errors
        .iter()
        .filter(|e| !buckets.iter().any(|b| b.source == e.source))
        .count() as u64;
    Ok(ReplicationReport {
        action: if apply { "apply" } else { "plan" },
        changed: count(Outcome::Changed),
        unchanged: count(Outcome::Unchanged),
        conflicts: count(Outcome::Conflict),
        failed: count(Outcome::Failed) + unattached_errors,
        buckets,
        row_errors,
    })
}

/// The account of an IAM role ARN: where Batch Replication jobs are created.
fn account_of(role_arn: &str) -> Result<&str> {
    crate::commands::audit::options::account_of(role_arn).map_err(|_| {
        Error::Config(format!(
            "{role_arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>): pass --role-arn or set SYNC_REPLICATION_ROLE_ARN"
        ))
    })
}
