//! `snapshots`: one line per snapshot of the prefix, oldest first, from a
//! listing and one HEAD per manifest; a table on a terminal, JSON otherwise.

use std::fmt::Write as _;

use clap::Args;

use super::listing::human_bytes;
use crate::config::Options;
use crate::error::Result;
use crate::manifest::catalog::{self, SnapshotLine};
use crate::run::Mode;
use crate::store::Store;
use crate::trust::Verdict;

/// The options of `snapshots`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct SnapshotsArgs {}

/// The validated options of `snapshots`.
#[derive(Debug, Clone)]
pub struct SnapshotsOptions {}

impl Options for SnapshotsOptions {
    type Args = SnapshotsArgs;
    type Run = crate::run::NoLockArgs;
    const WRITES: bool = false;

    fn from_args(_args: SnapshotsArgs, _mode: Mode) -> Result<Self> {
        Ok(SnapshotsOptions {})
    }
}

/// The snapshots of `prefix`, oldest first.
pub async fn run(store: &Store, prefix: &str) -> Result<Vec<SnapshotLine>> {
    catalog::snapshots(store, prefix).await
}

/// The lines as a table, for a person.
pub fn table(lines: &[SnapshotLine]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<36} {:<9} {:<10} {:>9} {:>10} {:<9} RESTORABLE",
        "TIME", "RUN", "KIND", "STATUS", "FILES", "SIZE", "SIGNED"
    );
    for line in lines {
        let status = line.status.map_or("?".to_owned(), |s| {
            serde_json::json!(s).as_str().unwrap_or("?").to_owned()
        });
        let kind = serde_json::json!(line.kind)
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let signed = match &line.signature {
            Verdict::Valid { .. } => "valid",
            Verdict::Unsigned => "no",
            Verdict::NotChecked { .. } => "unchecked",
            Verdict::BadSignature { .. } => "BAD",
            Verdict::ForeignKey { .. } => "FOREIGN",
        };
        let _ = writeln!(
            out,
            "{:<24} {:<36} {:<9} {:<10} {:>9} {:>10} {:<9} {}",
            line.time.format("%Y-%m-%d %H:%M:%S UTC"),
            line.run_id,
            kind,
            status,
            line.files.map_or("?".to_owned(), |f| f.to_string()),
            line.bytes.map_or("?".to_owned(), human_bytes),
            signed,
            line.restorable
        );
    }
    let _ = writeln!(out, "{} snapshots", lines.len());
    out
}
