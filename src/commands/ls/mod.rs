//! `ls SNAPSHOT [GLOB]`: the files of one snapshot, streamed as the
//! manifest is read, so a manifest of a million files is never held.

use std::io::Write;

use clap::Args;
use globset::GlobMatcher;

use super::listing::path_glob;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::manifest::stream::Records;
use crate::manifest::{FileRecord, locate};
use crate::run::Mode;
use crate::store::Store;

/// The options of `ls`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct LsArgs {
    /// The snapshot: "latest", a manifest_s3_uri, or a manifest's name.
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Only paths (relative to the backed-up directory) this glob matches.
    pub glob: Option<String>,
}

/// The validated options of `ls`.
#[derive(Debug, Clone)]
pub struct LsOptions {
    pub snapshot: String,
    pub glob: Option<GlobMatcher>,
    /// JSON lines rather than text (the CLI decides, by --json or stdout).
    pub json: bool,
}

impl Options for LsOptions {
    type Args = LsArgs;
    type Run = crate::run::NoLockArgs;
    const WRITES: bool = false;

    fn from_args(args: LsArgs, _mode: Mode) -> Result<Self> {
        let glob = args.glob.as_deref().map(path_glob).transpose()?;
        Ok(LsOptions {
            snapshot: args.snapshot,
            glob,
            json: false,
        })
    }
}

/// What `ls` listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub manifest_s3_uri: String,
    pub files: u64,
    pub bytes: u64,
}

/// Writes the files of the snapshot `options` names to `out`, one line
/// each: JSON, or `size md5 path` for a person. Where a key is trusted the
/// manifest is judged before its first line is written.
pub async fn run(
    store: &Store,
    prefix: &str,
    options: &LsOptions,
    mut out: Box<dyn Write + Send>,
) -> Result<Listed> {
    let which = Some(options.snapshot.as_str());
    let located = locate(store, prefix, which, true).await?;
    let mut records = Records::open_judged(store, prefix, &located.key).await?;
    let mut listed = Listed {
        manifest_s3_uri: store.uri(&located.key),
        files: 0,
        bytes: 0,
    };
    while let Some(record) = records.next().await? {
        if !record.is_stored_file() {
            continue;
        }
        let relative = records.relative(&record);
        if options.glob.as_ref().is_some_and(|g| !g.is_match(relative)) {
            continue;
        }
        listed.files += 1;
        listed.bytes += record.size_bytes;
        write_line(&mut out, options.json, relative, &record)
            .map_err(|err| Error::io("write", "the listing", err))?;
    }
    out.flush()
        .map_err(|err| Error::io("write", "the listing", err))?;
    Ok(listed)
}

fn write_line(
    out: &mut dyn Write,
    json: bool,
    relative: &str,
    record: &FileRecord,
) -> std::io::Result<()> {
    let md5 = record.md5.as_deref().unwrap_or("-");
    if json {
        let line = serde_json::json!({
            "path": relative,
            "size": record.size_bytes,
            "md5": md5,
            "s3_key": record.s3_key,
            "version_id": record.version(),
        });
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{:>12} {md5} {relative}", record.size_bytes)
    }
}
