//! The forget report as lines for a person.

use std::fmt::Write as _;

use super::ForgetReport;
use crate::commands::listing::human_bytes;

/// The report as lines for a person.
pub fn table(report: &ForgetReport) -> String {
    let mut out = String::new();
    for fate in &report.snapshots {
        let verb = if fate.kept { "keep  " } else { "forget" };
        let _ = writeln!(
            out,
            "{verb} {}  {}  {}",
            fate.line.time.format("%Y-%m-%d %H:%M:%S"),
            fate.line.run_id,
            fate.reasons.join(", ")
        );
    }
    for line in &report.untrusted {
        let _ = writeln!(
            out,
            "ignore {}  {}  untrusted: {}",
            line.time.format("%Y-%m-%d %H:%M:%S"),
            line.run_id,
            line.untrusted.as_deref().unwrap_or_default()
        );
    }
    let verb = if report.dry_run {
        "would forget"
    } else {
        "forgot"
    };
    let _ = writeln!(
        out,
        "kept {} snapshots, {verb} {}, ignored {} untrusted",
        report.kept,
        report.forgotten,
        report.untrusted.len()
    );
    if let Some(prune) = &report.prune {
        let _ = writeln!(
            out,
            "prune: {} versions listed, {} referenced, {} in grace, {} to delete ({}), {} hidden, {} deleted, {} left over",
            prune.sweep.versions_listed,
            prune.sweep.referenced,
            prune.sweep.in_grace,
            prune.sweep.versions_to_delete,
            human_bytes(prune.sweep.bytes_to_delete),
            prune.hidden,
            prune.deleted,
            prune.left_over
        );
    }
    if let Some(reason) = &report.reason {
        let _ = writeln!(out, "{reason}");
    }
    for r in &report.retained {
        let _ = writeln!(out, "retained {} ({}): {}", r.key, r.version_id, r.why);
    }
    out
}
