//! `diff A B`: the files added, removed and changed (by MD5) from one
//! snapshot to another. Both manifests are in path order, so they are
//! walked side by side, a record of each at a time: memory stays flat
//! whatever their size. Pages two paged snapshots share are not read.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::io::Write;

use clap::Args;
use serde::Serialize;

use super::listing::human_bytes;
use crate::config::Options;
use crate::error::{Error, Result};
use crate::manifest::locate;
use crate::manifest::paged::{Reading, pages_of};
use crate::manifest::read::Header;
use crate::manifest::stream::{Records, StoredFile};
use crate::run::Mode;
use crate::store::Store;

/// The options of `diff`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct DiffArgs {
    /// The older snapshot: a manifest_s3_uri, a manifest's name, or "latest".
    pub from: String,
    /// The newer snapshot ("latest" by default).
    #[arg(default_value = "latest")]
    pub to: String,
}

/// The validated options of `diff`.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub from: String,
    pub to: String,
    /// JSON lines rather than text (the CLI decides, by --json or stdout).
    pub json: bool,
}

impl Options for DiffOptions {
    type Args = DiffArgs;
    type Run = crate::run::NoLockArgs;
    const WRITES: bool = false;

    fn from_args(args: DiffArgs, _mode: Mode) -> Result<Self> {
        Ok(DiffOptions {
            from: args.from,
            to: args.to,
            json: false,
        })
    }
}

/// How a file differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    fn mark(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Changed => 'M',
        }
    }
}

/// What `diff` found, the last line it prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffSummary {
    pub from: String,
    pub to: String,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
    /// Bytes of changed files, before and after.
    pub bytes_changed_from: u64,
    pub bytes_changed_to: u64,
}

/// Walks the two snapshots `options` names side by side, writing each
/// difference to `out` as it is found, then the summary.
pub async fn run(
    store: &Store,
    prefix: &str,
    options: &DiffOptions,
    mut out: Box<dyn Write + Send>,
) -> Result<DiffSummary> {
    let from_key = locate(store, prefix, Some(&options.from), true).await?.key;
    let to_key = locate(store, prefix, Some(&options.to), true).await?.key;
    let from = Records::judge(store, prefix, &from_key).await?;
    let to = Records::judge(store, prefix, &to_key).await?;
    let shared = SharedPages::of(store, (&from_key, &from.0), (&to_key, &to.0)).await?;
    let reading = Reading::skipping(shared.pages);
    let mut from = Records::open_at(store, &from_key, from, &reading).await?;
    let mut to = Records::open_at(store, &to_key, to, &reading).await?;
    let mut summary = DiffSummary {
        from: store.uri(&from_key),
        to: store.uri(&to_key),
        unchanged: shared.files,
        ..DiffSummary::default()
    };
    let (mut old, mut new) = (from.next_stored_file().await?, to.next_stored_file().await?);
    loop {
        let order = match (&old, &new) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.path.cmp(&b.path),
        };
        match order {
            Ordering::Less => {
                if let Some(gone) = old.take() {
                    summary.removed += 1;
                    summary.bytes_removed += gone.size;
                    print(&mut out, options.json, Change::Removed, &gone, None)?;
                }
                old = from.next_stored_file().await?;
            }
            Ordering::Greater => {
                if let Some(came) = new.take() {
                    summary.added += 1;
                    summary.bytes_added += came.size;
                    print(&mut out, options.json, Change::Added, &came, None)?;
                }
                new = to.next_stored_file().await?;
            }
            Ordering::Equal => {
                if let (Some(a), Some(b)) = (old.take(), new.take()) {
                    if a.md5 == b.md5 && a.size == b.size {
                        summary.unchanged += 1;
                    } else {
                        summary.changed += 1;
                        summary.bytes_changed_from += a.size;
                        summary.bytes_changed_to += b.size;
                        print(&mut out, options.json, Change::Changed, &b, Some(&a))?;
                    }
                }
                old = from.next_stored_file().await?;
                new = to.next_stored_file().await?;
            }
        }
    }
    finish(&mut out, options.json, &summary)?;
    Ok(summary)
}

/// The pages two paged snapshots both hold: the same records, so the same
/// files unchanged, which neither side need read.
#[derive(Default)]
struct SharedPages {
    pages: HashSet<String>,
    files: u64,
}

impl SharedPages {
    async fn of(
        store: &Store,
        (from_key, from): (&str, &Header),
        (to_key, to): (&str, &Header),
    ) -> Result<SharedPages> {
        let (Some(from_root), Some(to_root)) = (from.paged_root(), to.paged_root()) else {
            return Ok(SharedPages::default());
        };
        let older: HashMap<String, u64> = pages_of(store, from_key, from_root)
            .await?
            .into_iter()
            .collect();
        let mut shared = SharedPages::default();
        for (page, files) in pages_of(store, to_key, to_root).await? {
            if older.contains_key(&page) && shared.pages.insert(page) {
                shared.files += files;
            }
        }
        Ok(shared)
    }
}

fn print(
    out: &mut dyn Write,
    json: bool,
    change: Change,
    file: &StoredFile,
    before: Option<&StoredFile>,
) -> Result<()> {
    let written = if json {
        let line = serde_json::json!({
            "change": change,
            "path": file.path,
            "size": file.size,
            "md5": file.md5,
            "old_size": before.map(|b| b.size),
            "old_md5": before.and_then(|b| b.md5.as_deref()),
        });
        writeln!(out, "{line}")
    } else {
        writeln!(
            out,
            "{} {:>10} {}",
            change.mark(),
            human_bytes(file.size),
            file.path
        )
    };
    written.map_err(|err| Error::io("write", "the differences", err))
}

fn finish(out: &mut dyn Write, json: bool, summary: &DiffSummary) -> Result<()> {
    let written = if json {
        writeln!(out, "{}", serde_json::json!({ "summary": summary }))
    } else {
        writeln!(
            out,
            "added {} files ({}), removed {} ({}), changed {} ({} -> {}), {} unchanged",
            summary.added,
            human_bytes(summary.bytes_added),
            summary.removed,
            human_bytes(summary.bytes_removed),
            summary.changed,
            human_bytes(summary.bytes_changed_from),
            human_bytes(summary.bytes_changed_to),
            summary.unchanged
        )
    };
    written
        .and_then(|()| out.flush())
        .map_err(|err| Error::io("write", "the differences", err))
}
