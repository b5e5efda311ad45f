//! What a run did, in a few lines for a person at a terminal; the JSON the
//! same run prints elsewhere is the interface scripts rely on.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::commands::audit::AuditReport;
use crate::commands::restore::RestoreReport;
use crate::commands::unlock::Unlocked;
use crate::commands::verify::VerifyReport;
use crate::manifest::Summary;
use crate::trust::Verdict;
use crate::units::{human_bytes, short_duration};

/// At most this many failures or problems are listed; `--json` has them all.
const LISTED: usize = 20;

pub fn sync(summary: &Summary) -> String {
    let mut text = String::new();
    let took = took(summary.duration_ms);
    if summary.dry_run {
        let _ = writeln!(
            text,
            "dry run, {took}: {} would be uploaded, {} unchanged, {} failed; nothing was written",
            summary.would_upload, summary.skipped, summary.failed
        );
    } else {
        let _ = writeln!(
            text,
            "sync {}, {took}: {} uploaded ({}), {} unchanged, {} re-encrypted, {} failed",
            word(&summary.status),
            summary.uploaded,
            human_bytes(summary.bytes_uploaded),
            summary.skipped,
            summary.reencrypted,
            summary.failed
        );
    }
    if summary.not_reached > 0 {
        let _ = writeln!(
            text,
            "not reached: {} files (the time limit came first; the next run picks them up)",
            summary.not_reached
        );
    }
    if let Some(uri) = &summary.manifest_s3_uri {
        let signed = summary
            .signed_by
            .as_deref()
            .map_or(String::from("unsigned"), |key| format!("signed by {key}"));
        let _ = writeln!(text, "snapshot: {uri} ({signed})");
    }
    if let Some(path) = &summary.manifest_local_path {
        let _ = writeln!(text, "manifest: {path}");
    }
    if let Some(shrunk) = &summary.source_shrunk {
        let _ = writeln!(
            text,
            "warning: the source holds {} files, the last complete run recorded {}: is it mounted?",
            shrunk.found, shrunk.recorded
        );
    }
    notes(&mut text, [&summary.manifest_error, &summary.message]);
    text
}

pub fn restore(report: &RestoreReport) -> String {
    let mut text = String::new();
    let took = took(report.duration_ms);
    if report.dry_run {
        let _ = writeln!(
            text,
            "dry run, {took}: {} would be restored into {}, {} already there; nothing was written",
            report.would_restore, report.target_dir, report.skipped
        );
    } else {
        let _ = writeln!(
            text,
            "restore {}, {took}: {} restored ({}) into {}, {} already there, {} directories, {} links, {} failed",
            word(&report.status),
            report.restored,
            human_bytes(report.bytes_restored),
            report.target_dir,
            report.skipped,
            report.directories,
            report.symlinks,
            report.failed
        );
    }
    if report.not_started > 0 {
        let _ = writeln!(
            text,
            "stopped by a signal: {} files not started; run the same restore again to finish",
            report.not_started
        );
    }
    let _ = writeln!(
        text,
        "from: {} ({})",
        report.manifest_s3_uri,
        signature(&report.signature)
    );
    list(
        &mut text,
        "failed",
        report.failures.iter().map(|f| (&f.path, &f.error)),
    );
    list(
        &mut text,
        "thawing (run the same restore again later)",
        report.pending_files.iter().map(|p| (&p.path, &p.detail)),
    );
    notes(&mut text, [&report.message]);
    text
}

pub fn verify(report: &VerifyReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "verify: {}, {}: {} files and {} manifests of the chain checked",
        word(&report.status),
        took(report.duration_ms),
        report.checked,
        report.chain_checked
    );
    let _ = writeln!(
        text,
        "snapshot: {} ({})",
        report.manifest_s3_uri,
        signature(&report.signature)
    );
    if let Some(read) = &report.read_data {
        let _ = writeln!(
            text,
            "read back: {} objects ({})",
            read.objects_read,
            human_bytes(read.bytes_read)
        );
    }
    let problems = report
        .problems
        .iter()
        .map(|p| (format!("{} {}", word(&p.kind), p.key), &p.detail));
    list(&mut text, "problems", problems);
    list(
        &mut text,
        "warnings",
        report.warnings.iter().map(|w| (&w.key, &w.detail)),
    );
    text
}

pub fn audit(report: &AuditReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "audit: {}, {}: {} objects checked, {} compliant, {} findings ({} fixed, {} remaining), {} unreadable",
        word(&report.status),
        took(report.duration_ms),
        report.checked,
        report.compliant,
        report.findings,
        report.fixed,
        report.remaining,
        report.errors
    );
    for (kind, count) in &report.by_kind {
        let _ = writeln!(text, "  {count} {}", word(kind));
    }
    if let Some(uri) = &report.findings_uri {
        let _ = writeln!(text, "findings: {uri}");
    }
    text
}

pub fn unlock(unlocked: &Unlocked) -> String {
    let holder = |holder: &Option<crate::run::lease::Holder>| {
        holder
            .as_ref()
            .map_or(String::from("an unreadable holder"), |h| {
                format!("run {}", h.run_id)
            })
    };
    match unlocked {
        Unlocked::Free => "no lock was held\n".into(),
        Unlocked::Removed { holder: h } => format!("removed the expired lock of {}\n", holder(h)),
        Unlocked::Forced { holder: h } => {
            format!("removed the live lock of {} (--force)\n", holder(h))
        }
        // The refusal goes to stderr, with the holder and its lease.
        Unlocked::Held { holder: h } => format!("the lock is held by run {}\n", h.run_id),
    }
}

fn took(duration_ms: u64) -> String {
    let duration = Duration::from_millis(duration_ms);
    if duration < Duration::from_secs(1) {
        format!("{duration_ms} ms")
    } else if duration < Duration::from_secs(60) {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        short_duration(duration)
    }
}

/// A status or kind as its JSON spells it: `succeeded`, `content_mismatch`.
fn word(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name.replace('_', " "),
        _ => String::from("?"),
    }
}

fn signature(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Valid { key_arn } => format!("signed by {key_arn}"),
        Verdict::Unsigned => "unsigned".into(),
        Verdict::NotChecked { key_arn } => format!("signed by {key_arn}, not checked"),
        other => other.refusal().unwrap_or_default(),
    }
}

/// A heading and its first [`LISTED`] lines; nothing when empty.
fn list<K: std::fmt::Display, D: std::fmt::Display>(
    text: &mut String,
    heading: &str,
    lines: impl ExactSizeIterator<Item = (K, D)>,
) {
    let count = lines.len();
    if count == 0 {
        return;
    }
    let _ = writeln!(text, "{heading} ({count}):");
    for (key, detail) in lines.take(LISTED) {
        let _ = writeln!(text, "  {key}: {detail}");
    }
    if count > LISTED {
        let _ = writeln!(
            text,
            "  … and {} more (--json lists them all)",
            count - LISTED
        );
    }
}

fn notes<'a>(text: &mut String, notes: impl IntoIterator<Item = &'a Option<String>>) {
    for note in notes.into_iter().flatten() {
        let _ = writeln!(text, "note: {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::RunStatus;

    #[test]
    fn words_and_durations_read_as_written() {
        assert_eq!(word(&RunStatus::Succeeded), "succeeded");
        assert_eq!(took(250), "250 ms");
        assert_eq!(took(4_200), "4.2 s");
        assert_eq!(took(185_000), "3m05s");
        let mut text = String::new();
        let many = (0..25).map(|i| (i, "gone"));
        list(&mut text, "failed", many);
        assert!(text.starts_with("failed (25):\n  0: gone\n"), "{text}");
        assert!(
            text.ends_with("… and 5 more (--json lists them all)\n"),
            "{text}"
        );
    }
}
