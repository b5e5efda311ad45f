//! `ls SNAPSHOT [GLOB]`: the files of one snapshot, streamed as the
//! manifest is read, so a manifest of a million files is never held.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use globset::GlobMatcher;

use super::listing::path_glob;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::manifest::read::read_fetched;
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

/// The reader's state: where the records go, and what was listed.
struct Lister {
    source_dir: PathBuf,
    glob: Option<GlobMatcher>,
    json: bool,
    out: Box<dyn Write + Send>,
    files: u64,
    bytes: u64,
    failed: Option<std::io::Error>,
}

/// Writes the files of the snapshot `options` names to `out`, one line
/// each: JSON, or `size md5 path` for a person.
pub async fn run(
    store: &Store,
    prefix: &str,
    options: &LsOptions,
    out: Box<dyn Write + Send>,
) -> Result<Listed> {
    let which = Some(options.snapshot.as_str());
    let located = locate(store, prefix, which, true).await?;
    let header = crate::manifest::header_of(store, &located.key).await?;
    let fetched = store
        .get(&located.key)
        .await?
        .ok_or_else(|| Error::Config(format!("manifest {} vanished", store.uri(&located.key))))?;
    let lister = Lister {
        source_dir: PathBuf::from(&header.source_dir),
        glob: options.glob.clone(),
        json: options.json,
        out,
        files: 0,
        bytes: 0,
        failed: None,
    };
    let parsed = read_fetched(fetched, lister, list_one).await?;
    let mut lister = parsed.state;
    if let Some(err) = lister.failed.take() {
        return Err(Error::io("write", "the listing", err));
    }
    lister
        .out
        .flush()
        .map_err(|err| Error::io("write", "the listing", err))?;
    Ok(Listed {
        manifest_s3_uri: store.uri(&located.key),
        files: lister.files,
        bytes: lister.bytes,
    })
}

fn list_one(lister: &mut Lister, record: FileRecord) {
    if lister.failed.is_some() || !record.is_stored_file() {
        return;
    }
    let path = std::path::Path::new(&record.local_path);
    let relative = path.strip_prefix(&lister.source_dir).unwrap_or(path);
    let relative = relative.to_string_lossy();
    if lister
        .glob
        .as_ref()
        .is_some_and(|g| !g.is_match(relative.as_ref()))
    {
        return;
    }
    lister.files += 1;
    lister.bytes += record.size_bytes;
    let md5 = record.md5.as_deref().unwrap_or("-");
    let written = if lister.json {
        let line = serde_json::json!({
            "path": relative,
            "size": record.size_bytes,
            "md5": md5,
            "s3_key": record.s3_key,
            "version_id": record.version(),
        });
        writeln!(lister.out, "{line}")
    } else {
        writeln!(lister.out, "{:>12} {md5} {relative}", record.size_bytes)
    };
    if let Err(err) = written {
        lister.failed = Some(err);
    }
}
