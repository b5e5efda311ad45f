//! `verify`: prove a backup against its manifest. Every file's object is
//! checked from one listing plus HEADs where the listing cannot vouch; a
//! share of the objects can be read back and hashed; the manifest chain is
//! followed back to detect rewritten or deleted manifests. Nothing is written.

mod check;
pub mod data;
pub mod options;
pub mod report;

use tracing::{Instrument, info, info_span};

use crate::error::Result;
use crate::manifest::chain;
use crate::manifest::trusted::{self, Judged};
use crate::manifest::{EntryKind, FileRecord, ManifestLink, locate};
use crate::run::RunContext;
use crate::store::{Kept, Store};
use crate::trust::Verdict;
pub use options::{ReadShare, VerifyArgs, VerifyOptions, VerifyRequest};
pub use report::{Problem, ProblemKind, VerifyReport, VerifyStatus, Warning};

/// Verifies the manifest `request` names. Problems are in the report; `Err`
/// means the verification could not start (no manifest, no access).
pub async fn run(
    store: &Store,
    prefix: &str,
    options: &VerifyOptions,
    request: &VerifyRequest,
) -> Result<VerifyReport> {
    let run = RunContext::start(None);
    let span = info_span!("verify", run_id = %run.id, bucket = %store.bucket(), prefix);
    async {
        let before = store.requests();
        let located = locate(store, prefix, request.manifest.as_deref(), true).await?;
        let key = located.key;
        let mut report = VerifyReport::new(&run.id, store.uri(&key));
        report.passed_over = located.passed_over;
        let manifest = read_manifest(store, prefix, (&key, located.kept.as_ref())).await?;
        if !store.trust().enforced() {
            report.warnings.extend(Warning::unchecked(
                &report.manifest_s3_uri,
                &manifest.verdict,
            ));
        }
        report.signature = manifest.verdict;
        report.add_all(manifest.problems);
        report.checked = manifest.files.len() as u64;
        let (files, previous) = (manifest.files, manifest.previous);
        let keys = files.iter().filter_map(|f| f.kms_key_id.as_deref());
        let unusable = store
            .unusable_keys(manifest.kms_key_id.as_deref(), keys)
            .await;
        report.add_all(unusable.into_iter().map(Problem::key_unusable).collect());
        let problems = check_objects(store, prefix, &files, options.concurrency).await;
        // An object already found wanting is not read again.
        let flagged: std::collections::HashSet<String> =
            problems.iter().map(|p| p.key.clone()).collect();
        report.add_all(problems);

        if let Some(share) = request.read_data {
            let seed = request.read_data_seed.unwrap_or_else(day_number);
            let present: Vec<FileRecord> = files
                .into_iter()
                .filter(|f| !flagged.contains(f.s3_key.as_deref().unwrap_or_default()))
                .collect();
            let (read, problems) =
                data::read_back(store, &present, share, seed, options.concurrency).await;
            report.read_data = Some(read);
            report.add_all(problems);
        }

        let (checked, broken) = chain::walk_back(store, previous, request.since_chain).await;
        report.chain_checked = 1 + checked;
        let (gaps, broken): (Vec<_>, Vec<_>) = broken.into_iter().partition(|link| link.gap);
        report.add_all(broken.into_iter().map(Problem::chain_broken).collect());
        report.warnings.extend(gaps.into_iter().map(Warning::gap));

        report.requests = store.requests_since(&before);
        report.duration_ms = run.clock.elapsed().as_millis() as u64;
        info!(
            status = ?report.status,
            checked = report.checked,
            problems = report.problem_count(),
            "verify finished"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

/// What verify reads of a manifest.
struct ReadManifest {
    /// The records of stored files whose objects are where their paths map
    /// (directories and links have no object).
    files: Vec<FileRecord>,
    /// Its link to the manifest before it.
    previous: Option<ManifestLink>,
    /// The KMS key S3 named for the manifest object itself.
    kms_key_id: Option<String>,
    verdict: Verdict,
    /// The manifest's own problems: its signature where a key is trusted;
    /// else its bytes, if they are not those whose SHA-256 was stored with
    /// it; and its misplaced records.
    problems: Vec<Problem>,
}

/// The manifest at `key`: the verified manifest is the chain's first link.
async fn read_manifest(
    store: &Store,
    prefix: &str,
    (key, kept): (&str, Option<&Kept>),
) -> Result<ReadManifest> {
    let judged = trusted::read_judged(store, prefix, (key, kept), &Default::default()).await?;
    let uri = store.uri(key);
    let mut problems: Vec<Problem> = Problem::of_signature(&uri, &judged.verdict)
        .filter(|_| store.trust().enforced())
        .into_iter()
        .collect();
    if !judged.verdict.is_valid() {
        problems.extend(judged.broken.map(Problem::chain_broken));
    }
    let Judged {
        parsed, verdict, ..
    } = judged;
    let header = &parsed.header;
    let mut files = Vec::new();
    for file in parsed
        .state
        .into_iter()
        .filter(|f| f.kind == EntryKind::File)
    {
        let why = match trusted::relative_path(header, &file) {
            Some(relative) => trusted::misplaced(&header.prefix, &file, &relative),
            None => Some(format!("its path is not under {}", header.source_dir)),
        };
        match why {
            Some(detail) => problems.push(Problem {
                kind: ProblemKind::Misplaced,
                key: file.local_path,
                detail,
            }),
            None => files.push(file),
        }
    }
    Ok(ReadManifest {
        files,
        previous: parsed.header.previous_manifest,
        kms_key_id: parsed.kms_key_id,
        verdict,
        problems,
    })
}

/// The problems of each file's object: one listing of the prefix's
/// versions, and a HEAD (or a read) where it cannot vouch.
async fn check_objects(
    store: &Store,
    prefix: &str,
    files: &[FileRecord],
    concurrency: usize,
) -> Vec<Problem> {
    let list_prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let listing = check::Listing::of(store, &list_prefix).await;
    check::check(store, listing.as_ref(), files, concurrency).await
}

/// Days since the epoch: the default seed, so a daily verify reads the next
/// slice each day.
fn day_number() -> u64 {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    now / 86_400
}
