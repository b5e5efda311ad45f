//! `audit`: find every current object of the prefix that is not SSE-KMS
//! under the configured key with an S3 Bucket Key, from a listing (plus a
//! HEAD each) or an S3 Inventory report, and fix it: in place by the same
//! conditional server-side copy as sync, or by an S3 Batch Operations job.
//!
//! The objects stream from their source through a bounded channel into
//! `concurrency` judgements at once; findings go to a spooled JSON Lines
//! object and, for Batch Operations, to a spooled CSV manifest, so memory
//! does not grow with the bucket.

pub mod batch;
pub mod inventory;
pub mod options;
pub mod report;
pub mod scan;

use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span};

use crate::error::{Error, Result};
use crate::manifest::stamp;
use crate::run::RunContext;
use crate::run::progress::Progress;
use crate::store::{CopySource, Finding, Store, keys};
pub use options::{AuditArgs, AuditOptions, AuditRequest, Fix};
pub use report::{AuditReport, AuditStatus, BatchJob, FindingEntry};
use report::{LISTED_FINDINGS, Spool};
use scan::{Candidate, Judged, Scope};

/// Candidates read ahead of the judgements.
const READ_AHEAD: usize = 1024;

/// Audits the prefix. Findings are in the report; `Err` means the audit
/// could not start or its source failed (an unreadable inventory).
pub async fn run(
    store: &Store,
    prefix: &str,
    options: &AuditOptions,
    request: &AuditRequest,
) -> Result<AuditReport> {
    options.check(request)?;
    let run = RunContext::start(None);
    let span = info_span!("audit", run_id = %run.id, bucket = %store.bucket(), prefix);
    async {
        let before = store.requests();
        let source = request
            .inventory
            .clone()
            .unwrap_or_else(|| "listing".into());
        let mut report = AuditReport::new(&run.id, store.bucket(), prefix, source);
        let name = |what: &str| {
            keys::audit_key(prefix, &format!("{}-{}-{what}", stamp(run.started), run.id))
        };
        let findings_key = name("findings.jsonl");
        // Written empty first: a key or permission problem stops the audit
        // before any work, and S3 names the key a configured alias points to.
        Spool::new()?
            .upload(store, &findings_key, JSON_LINES)
            .await?;

        let scope = Scope::new(store.bucket(), prefix);
        let (sender, receiver) = mpsc::channel(READ_AHEAD);
        let produce = async {
            match &request.inventory {
                Some(uri) => inventory::read(store, uri, &scope, sender).await,
                None => scan::listed(store, &scope, sender).await,
            }
        };
        let progress = Progress::counting();
        let shown = progress.show("re-encrypted");
        let consume = collect(store, options, request, receiver, &mut report, &progress);
        let (produced, consumed) = tokio::join!(produce, consume);
        drop(shown);
        produced?;
        let (findings, batch) = consumed?;
        findings.upload(store, &findings_key, JSON_LINES).await?;
        report.findings_uri = Some(store.uri(&findings_key));
        if let Some(batch) = batch {
            submit_batch(
                store,
                options,
                request,
                batch,
                &name("batch-manifest.csv"),
                &mut report,
            )
            .await?;
        }

        report.requests = store.requests_since(&before);
        report.duration_ms = run.clock.elapsed().as_millis() as u64;
        report.finish();
        info!(
            status = ?report.status,
            checked = report.checked,
            findings = report.findings,
            fixed = report.fixed,
            "audit finished"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

const JSON_LINES: &str = "application/x-ndjson";

/// What became of one candidate.
enum Examined {
    /// Gone since its source was taken.
    Vanished,
    Compliant,
    /// Its encryption could not be read.
    Unreadable {
        key: String,
        error: String,
    },
    Finding(FindingEntry),
}

/// Judges every candidate, `concurrency` at once, fixing in place under
/// `--fix copy`; counts into `report`, spools the findings and, for Batch
/// Operations, the manifest rows.
async fn collect(
    store: &Store,
    options: &AuditOptions,
    request: &AuditRequest,
    receiver: mpsc::Receiver<Result<Candidate>>,
    report: &mut AuditReport,
    progress: &Progress,
) -> Result<(Spool, Option<batch::BatchManifests>)> {
    let mut findings = Spool::new()?;
    let mut batch =
        matches!(request.fix, Fix::BatchManifest | Fix::Batch).then(batch::BatchManifests::default);
    let candidates = futures::stream::unfold(receiver, |mut r| async move {
        let next = r.recv().await;
        match next {
            Some(_) => progress.found(1, 0),
            None => progress.all_found(),
        }
        next.map(|item| (item, r))
    });
    let candidates = std::pin::pin!(candidates);
    let mut examined = candidates
        .map(|candidate| async move {
            let fix = request.fix == Fix::Copy;
            examine(store, candidate?, options.skip_key_check, fix).await
        })
        .buffer_unordered(options.concurrency);
    while let Some(outcome) = examined.next().await {
        match outcome? {
            Examined::Vanished => report.vanished += 1,
            Examined::Compliant => {
                report.checked += 1;
                report.compliant += 1;
                progress.count_done();
            }
            Examined::Unreadable { key, error } => {
                report.checked += 1;
                report.errors += 1;
                progress.count_failed();
                findings.line(&serde_json::json!({"key": key, "error": error}).to_string())?;
            }
            Examined::Finding(entry) => {
                report.checked += 1;
                if entry.fixed {
                    progress.count_moved(entry.size.unwrap_or(0));
                } else {
                    progress.count_done();
                }
                if let Some(batch) = batch.as_mut().filter(|_| entry.kind.copyable()) {
                    if entry.size.is_some_and(|s| s > batch::MAX_BATCH_COPY) {
                        if report.too_large_for_batch.len() < LISTED_FINDINGS {
                            report.too_large_for_batch.push(entry.key.clone());
                        }
                    } else if batch.add(
                        store.bucket(),
                        &entry.key,
                        entry.storage_class.as_deref(),
                    )? == batch::Added::Archived
                        && report.archived_for_batch.len() < LISTED_FINDINGS
                    {
                        report.archived_for_batch.push(entry.key.clone());
                    }
                }
                findings.line(&serde_json::to_string(&entry)?)?;
                report.add(&entry);
            }
        }
    }
    Ok((findings, batch))
}

/// One candidate judged, and fixed in place when asked and possible.
async fn examine(
    store: &Store,
    candidate: Candidate,
    trust_kms: bool,
    fix: bool,
) -> Result<Examined> {
    let key = candidate.key.clone();
    let judged = match scan::judge(store, candidate, trust_kms).await {
        Ok(Some(judged)) => judged,
        Ok(None) => return Ok(Examined::Vanished),
        Err(err) => {
            return Ok(Examined::Unreadable {
                key,
                error: err.to_string(),
            });
        }
    };
    let Some(kind) = judged.finding else {
        return Ok(Examined::Compliant);
    };
    let Judged {
        candidate, detail, ..
    } = judged;
    let mut entry = FindingEntry {
        key: candidate.key.clone(),
        kind,
        detail,
        version_id: candidate.version_id.clone(),
        size: candidate.size,
        storage_class: candidate.storage_class.clone(),
        fixed: false,
        note: None,
    };
    if kind == Finding::SseC {
        entry.note = Some("left alone: only the holder of the customer key can copy it".into());
    } else if fix {
        match copy_in_place(store, &candidate).await {
            Ok(()) => entry.fixed = true,
            Err(Error::PreconditionFailed { .. }) => {
                entry.note =
                    Some("changed since it was judged: the next audit judges it again".into());
            }
            Err(err) => entry.note = Some(format!("copy failed: {err}")),
        }
    }
    Ok(Examined::Finding(entry))
}

/// The conditional copy of the object as judged. An inventory row without
/// an ETag is read by a HEAD first: a copy is never unconditional.
async fn copy_in_place(store: &Store, candidate: &Candidate) -> Result<()> {
    let head;
    let (etag, size) = match &candidate.etag {
        Some(etag) => (etag.as_str(), candidate.size),
        None => {
            head = store.head(&candidate.key).await?.ok_or_else(|| {
                Error::s3_detail(
                    "HeadObject",
                    store.bucket(),
                    &candidate.key,
                    "deleted meanwhile",
                )
            })?;
            let size = head.size.and_then(|s| u64::try_from(s).ok());
            (head.etag.as_deref().unwrap_or_default(), size)
        }
    };
    store
        .reencrypt(CopySource {
            key: &candidate.key,
            etag,
            size: size.unwrap_or(0),
            storage_class: candidate.storage_class.as_deref(),
        })
        .await?;
    Ok(())
}

/// Uploads a Batch Operations manifest per storage class and, for
/// `--fix batch`, creates a job for each, writing its copies in that class.
async fn submit_batch(
    store: &Store,
    options: &AuditOptions,
    request: &AuditRequest,
    manifests: batch::BatchManifests,
    key: &str,
    report: &mut AuditReport,
) -> Result<()> {
    report.batch_rows = Some(manifests.rows());
    let client = match (&options.control, request.fix) {
        (_, Fix::BatchManifest) => None,
        (Some(client), _) => Some(client.clone()),
        (None, _) => Some(aws_sdk_s3control::Client::new(
            &aws_config::load_from_env().await,
        )),
    };
    for (class, spool) in manifests.finish() {
        let class_key = batch::manifest_key_of_class(key, &class);
        let rows = spool.lines;
        let etag = spool.upload(store, &class_key, "text/csv").await?;
        let mut job = BatchJob {
            storage_class: class.clone(),
            manifest_uri: store.uri(&class_key),
            rows,
            job_id: None,
        };
        if let Some(client) = &client {
            let role_arn = options.batch_role_arn.as_deref().unwrap_or_default();
            let default_reports = keys::audit_key(&report.prefix, "reports");
            let token = format!("{}-{}", report.run_id, class.to_ascii_lowercase());
            let spec = batch::JobSpec {
                account_id: options::account_of(role_arn)?,
                role_arn,
                bucket: store.bucket(),
                kms_key_id: store.key_arn(),
                manifest_key: &class_key,
                manifest_etag: &etag,
                storage_class: &class,
                report_prefix: options.report_prefix.as_deref().unwrap_or(&default_reports),
                confirmation_required: request.confirm_job,
                client_token: &token,
            };
            job.job_id = Some(batch::create_job(client, &spec).await?);
        }
        report.batch_jobs.push(job);
    }
    Ok(())
}
