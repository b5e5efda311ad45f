//! The options of `restore`: where to, from which manifest, which files,
//! and whether existing files may be replaced.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::config::{Options, parse_size};
use crate::error::{Error, Result};
use crate::local::filter::Filter;
use crate::run::Mode;
use crate::store::Ranges;

/// The options of `restore`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct RestoreArgs {
    /// Directory to restore into (created if missing); files go to their
    /// paths relative to the backed-up directory [required].
    #[arg(long = "target", env = "SYNC_RESTORE_TARGET")]
    pub target_dir: Option<PathBuf>,
    /// The snapshot to restore: "latest" (the newest complete, full one;
    /// signed, where a key is trusted), a manifest name as `snapshots`
    /// lists it, or the manifest_s3_uri a run printed.
    #[arg(long, env = "SYNC_RESTORE_MANIFEST", default_value = "latest")]
    pub manifest: Option<String>,
    /// Only restore files whose relative path matches one of these globs.
    #[arg(long = "include", env = "SYNC_RESTORE_INCLUDE", value_delimiter = ',')]
    pub include: Vec<String>,
    /// Leave out files whose relative path matches one of these globs.
    #[arg(long = "exclude", env = "SYNC_RESTORE_EXCLUDE", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// List what would be restored, and why, on stderr; create nothing.
    #[arg(long, env = "SYNC_RESTORE_DRY_RUN", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub dry_run: bool,
    /// Replace existing files whose content differs from the manifest's.
    #[arg(long, env = "SYNC_RESTORE_OVERWRITE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub overwrite: bool,
    /// Files fetched at once. S3's latency sets the pace, so many are in
    /// flight; each streams to disk a chunk at a time, so memory stays
    /// small, and holds a connection and an open file.
    #[arg(long, env = "SYNC_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// Objects larger than this are fetched in ranges of this size, several
    /// at once (bytes, or with KiB/MiB/GiB).
    #[arg(long, env = "SYNC_PART_SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Ranges of one large object fetched at once.
    #[arg(long, env = "SYNC_PART_CONCURRENCY", default_value_t = 8)]
    pub part_concurrency: usize,
    /// Leave owners as this process creates them, even as root.
    #[arg(long)]
    pub no_owner: bool,
    /// Restore a manifest the trusted key did not sign (unsigned, badly
    /// signed, or by another key). Only for snapshots written before
    /// signing was set up: anyone who can put an object into the prefix
    /// can write an unsigned manifest.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Ask S3 to thaw files whose objects are archived (GLACIER,
    /// DEEP_ARCHIVE, Intelligent-Tiering archive tiers); they are reported
    /// as pending, and a later run of the same restore brings them back.
    #[arg(long)]
    pub restore_archived: bool,
    /// How fast S3 thaws them: Standard, Bulk or Expedited (GLACIER only).
    #[arg(long, default_value = "Standard", requires = "restore_archived")]
    pub tier: String,
    /// How many days a thawed copy stays readable (not for
    /// Intelligent-Tiering, which moves the object back instead).
    #[arg(long, default_value_t = 7, requires = "restore_archived")]
    pub restore_days: i32,
}

/// The validated options of `restore`.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target_dir: PathBuf,
    pub manifest: Option<String>,
    pub filter: Filter,
    pub dry_run: bool,
    pub overwrite: bool,
    pub concurrency: usize,
    /// How a large object is fetched.
    pub ranges: Ranges,
    /// Thaw archived objects, and how.
    pub thaw: Option<ThawOptions>,
    /// Leave owners alone even as root.
    pub no_owner: bool,
    /// Take a manifest the trusted key did not sign.
    pub allow_unsigned: bool,
}

/// How `--restore-archived` asks S3 to thaw an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThawOptions {
    pub tier: String,
    pub days: i32,
}

/// The retrieval tiers RestoreObject takes.
const TIERS: [&str; 3] = ["Standard", "Bulk", "Expedited"];

impl Options for RestoreOptions {
    type Args = RestoreArgs;
    type Run = crate::run::NoLockArgs;
    const WRITES: bool = false;

    fn from_args(args: RestoreArgs, _mode: Mode) -> Result<Self> {
        let target_dir = args.target_dir.ok_or_else(|| {
            Error::missing(
                "the directory to restore into",
                "SYNC_RESTORE_TARGET",
                "--target",
            )
        })?;
        if target_dir.exists() && !target_dir.is_dir() {
            return Err(Error::Config(format!(
                "the restore target {} is not a directory: set SYNC_RESTORE_TARGET or pass --target with a directory (it is created if missing)",
                target_dir.display()
            )));
        }
        if args.concurrency == 0 {
            return Err(Error::Config(
                "concurrency must be at least 1: set SYNC_CONCURRENCY or pass --concurrency".into(),
            ));
        }
        if args.part_concurrency == 0 || args.part_size == 0 {
            return Err(Error::Config(
                "part size and part concurrency must be at least 1: set SYNC_PART_SIZE and SYNC_PART_CONCURRENCY or pass --part-size and --part-concurrency".into(),
            ));
        }
        let tier = TIERS
            .iter()
            .find(|t| t.eq_ignore_ascii_case(args.tier.trim()));
        let Some(tier) = tier else {
            return Err(Error::Config(format!(
                "--tier {} is not a retrieval tier: pass Standard, Bulk or Expedited",
                args.tier
            )));
        };
        if args.restore_days < 1 {
            return Err(Error::Config(
                "--restore-days must be at least 1: pass the days a thawed copy stays readable"
                    .into(),
            ));
        }
        let thaw = args.restore_archived.then(|| ThawOptions {
            tier: (*tier).to_owned(),
            days: args.restore_days,
        });
        Ok(RestoreOptions {
            target_dir,
            manifest: args.manifest,
            filter: Filter::new(&args.include, &args.exclude)?,
            dry_run: args.dry_run,
            overwrite: args.overwrite,
            concurrency: args.concurrency,
            ranges: Ranges {
                part_size: args.part_size,
                at_once: args.part_concurrency,
            },
            thaw,
            no_owner: args.no_owner,
            allow_unsigned: args.allow_unsigned,
        })
    }
}
