//! The options of `sync`: what it backs up and how it sends files.

use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use tracing::warn;

use crate::config::{Options, existing_dir, parse_size};
use crate::error::{Error, Result};
use crate::local::filter::Filter;
use crate::run::Mode;
use crate::store::multipart::{MAX_PART_SIZE, MAX_SINGLE_PUT, MIN_PART_SIZE};

/// The options of `sync`, exactly as given in the environment or on the command line.
#[derive(Debug, Clone, Default, Args)]
pub struct SyncArgs {
    /// Directory to back up [required; /mnt/data under Lambda].
    #[arg(long, env = "SYNC_SOURCE_DIR")]
    pub source_dir: Option<PathBuf>,
    /// Files processed at once. S3's latency limits throughput, so many are
    /// in flight; the memory they use is bounded by --memory-budget. Each
    /// holds a connection and an open file: 256 leave room under Lambda's
    /// 1,024 descriptors.
    #[arg(long, env = "SYNC_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// Directories read at once by the walk: on EFS every metadata call is a
    /// network round trip, so calls in flight set the walk's pace.
    #[arg(long, env = "SYNC_WALK_THREADS", default_value_t = crate::local::walk::DEFAULT_THREADS)]
    pub walk_threads: usize,
    /// Files of the last manifest per slice of the walk. A run walks the
    /// source slice by slice from where the last one stopped; stopped by the
    /// time limit, it records the end of the last slice it finished.
    #[arg(long, env = "SYNC_SLICE_FILES", default_value_t = crate::commands::sync::resume::SLICE_FILES)]
    pub slice_files: usize,
    /// File content held in memory at once, across all files in flight: a
    /// small file whole, a large one a part at a time (bytes, or with KiB/MiB/GiB).
    #[arg(long, env = "SYNC_MEMORY_BUDGET", default_value = "256MiB", value_parser = parse_size)]
    pub memory_budget: u64,
    /// Files larger than this use multipart upload (bytes, or with KiB/MiB/GiB).
    #[arg(long, env = "SYNC_MULTIPART_THRESHOLD", default_value = "8MiB", value_parser = parse_size)]
    pub multipart_threshold: u64,
    /// Smallest multipart part size; grown so no file needs more than 10,000 parts.
    #[arg(long, env = "SYNC_PART_SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Parts of one large file sent at once. One S3 connection carries some
    /// 50-100 MB/s, so a large file moves at that speed times this; the
    /// memory budget bounds the parts held across all files.
    #[arg(long, env = "SYNC_PART_CONCURRENCY", default_value_t = 8)]
    pub part_concurrency: usize,
    /// Only back up files whose relative path matches one of these globs.
    #[arg(long = "include", env = "SYNC_INCLUDE", value_delimiter = ',')]
    pub include: Vec<String>,
    /// Leave out files whose relative path matches one of these globs.
    #[arg(long = "exclude", env = "SYNC_EXCLUDE", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Plan and write the manifest locally, upload nothing.
    #[arg(long, env = "SYNC_DRY_RUN", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub dry_run: bool,
    /// Read and hash every file on every Nth run instead of trusting unchanged
    /// size, times and inode; 0: only when an event asks with "rehash": true
    /// [default: 0].
    #[arg(long, env = "SYNC_REHASH_EVERY")]
    pub rehash_every: Option<u32>,
    /// A run that finds fewer files than this share of what the last complete
    /// run recorded (an unmounted file system, a mass deletion) is never
    /// reported as succeeded (0 turns the check off).
    #[arg(long, env = "SYNC_MIN_SOURCE_RATIO", default_value_t = 0.5)]
    pub min_source_ratio: f64,
    /// How snapshots are stored: 2, records in content-addressed pages that
    /// later runs share (what changed is all a run writes); 1, one document
    /// of every record per run, as before [default: 2].
    #[arg(long, env = "SYNC_SNAPSHOT_FORMAT", value_parser = clap::value_parser!(u32).range(1..=2))]
    pub snapshot_format: Option<u32>,
    /// Deprecated name of --rehash-every (SYNC_VERIFY_EVERY).
    #[arg(long, env = "SYNC_VERIFY_EVERY", hide = true)]
    pub verify_every: Option<u32>,
}

/// The validated options of `sync`.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Resolved: absolute, no symlinks.
    pub source_dir: PathBuf,
    pub concurrency: usize,
    pub walk_threads: usize,
    pub slice_files: usize,
    pub memory_budget: u64,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub part_concurrency: usize,
    pub filter: Filter,
    pub dry_run: bool,
    pub rehash_every: u32,
    pub min_source_ratio: f64,
    /// 1 or [`crate::manifest::paged::FORMAT`].
    pub snapshot_format: u32,
}

impl SyncOptions {
    /// These options with the source directory checked and resolved now:
    /// what every sync, plan and merge runs with.
    pub fn with_source_checked(&self) -> Result<SyncOptions> {
        Ok(SyncOptions {
            source_dir: checked_source(&self.source_dir)?,
            ..self.clone()
        })
    }
}

fn checked_source(dir: &Path) -> Result<PathBuf> {
    existing_dir(
        "source directory",
        dir,
        "SYNC_SOURCE_DIR (the template's SourceDir, under an EFS access point given by EfsAccessPointArn)",
        "--source-dir",
    )
}

impl Options for SyncOptions {
    type Args = SyncArgs;
    type Run = crate::run::RunArgs;

    fn from_args(args: SyncArgs, mode: Mode) -> Result<Self> {
        let source_dir = match (args.source_dir, mode) {
            (Some(dir), _) => dir,
            (None, Mode::Lambda) => PathBuf::from("/mnt/data"),
            (None, Mode::Cli) => {
                return Err(Error::missing(
                    "the source directory",
                    "SYNC_SOURCE_DIR",
                    "--source-dir",
                ));
            }
        };
        // Under Lambda the function serves verify and audit too, which need
        // no source: the source is checked when a sync runs.
        let source_dir = match (checked_source(&source_dir), mode) {
            (Ok(resolved), _) => resolved,
            (Err(_), Mode::Lambda) => source_dir,
            (Err(err), Mode::Cli) => return Err(err),
        };
        if args.concurrency == 0 {
            return Err(Error::Config(
                "concurrency must be at least 1: set SYNC_CONCURRENCY or pass --concurrency".into(),
            ));
        }
        if args.part_concurrency == 0 {
            return Err(Error::Config(
                "part concurrency must be at least 1: set SYNC_PART_CONCURRENCY or pass --part-concurrency"
                    .into(),
            ));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&args.part_size) {
            return Err(Error::Config(format!(
                "part size {} is outside S3's range of 5 MiB to 5 GiB: set SYNC_PART_SIZE or pass --part-size",
                args.part_size
            )));
        }
        if args.multipart_threshold == 0 || args.multipart_threshold > MAX_SINGLE_PUT {
            return Err(Error::Config(format!(
                "multipart threshold {} must be between 1 byte and 5 GiB: set SYNC_MULTIPART_THRESHOLD or pass --multipart-threshold",
                args.multipart_threshold
            )));
        }
        if args.slice_files == 0 {
            return Err(Error::Config(
                "slice files must be at least 1: set SYNC_SLICE_FILES or pass --slice-files".into(),
            ));
        }
        if args.walk_threads == 0 {
            return Err(Error::Config(
                "walk threads must be at least 1: set SYNC_WALK_THREADS or pass --walk-threads"
                    .into(),
            ));
        }
        if args.memory_budget < args.multipart_threshold.max(args.part_size) {
            return Err(Error::Config(format!(
                "memory budget {} is smaller than one file under the multipart threshold or one part ({}): set SYNC_MEMORY_BUDGET or pass --memory-budget",
                args.memory_budget,
                args.multipart_threshold.max(args.part_size)
            )));
        }
        if !(0.0..=1.0).contains(&args.min_source_ratio) {
            return Err(Error::Config(format!(
                "minimum source ratio {} must be between 0 and 1: set SYNC_MIN_SOURCE_RATIO or pass --min-source-ratio",
                args.min_source_ratio
            )));
        }
        if args.verify_every.is_some() {
            warn!(
                "SYNC_VERIFY_EVERY (--verify-every) is deprecated; use SYNC_REHASH_EVERY (--rehash-every)"
            );
        }
        Ok(SyncOptions {
            source_dir,
            concurrency: args.concurrency,
            walk_threads: args.walk_threads,
            slice_files: args.slice_files,
            memory_budget: args.memory_budget,
            multipart_threshold: args.multipart_threshold,
            part_size: args.part_size,
            part_concurrency: args.part_concurrency,
            // Compiled now, so a typo fails before the first run.
            filter: Filter::new(&args.include, &args.exclude)?,
            dry_run: args.dry_run,
            rehash_every: args.rehash_every.or(args.verify_every).unwrap_or(0),
            min_source_ratio: args.min_source_ratio,
            snapshot_format: args
                .snapshot_format
                .unwrap_or(crate::manifest::paged::FORMAT),
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::multipart::MIB;
    use std::path::Path;

    pub(in crate::commands::sync) fn args(dir: &Path) -> SyncArgs {
        SyncArgs {
            source_dir: Some(dir.to_owned()),
            concurrency: 4,
            walk_threads: 4,
            slice_files: 10_000,
            memory_budget: 256 * MIB,
            multipart_threshold: 8 * MIB,
            part_size: 8 * MIB,
            part_concurrency: 8,
            ..SyncArgs::default()
        }
    }

    #[test]
    fn a_memory_budget_below_one_part_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let args = SyncArgs {
            memory_budget: 4 * MIB,
            ..args(dir.path())
        };
        let err = SyncOptions::from_args(args, Mode::Cli)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SYNC_MEMORY_BUDGET"), "{err}");
    }

    fn config_error(result: Result<SyncOptions>) -> String {
        match result {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn the_old_rehash_flag_still_works_and_the_new_one_wins() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            sync: SyncArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().to_str().unwrap();
        let every = |flags: &[&str]| {
            let parsed = Flags::try_parse_from([&["x", "--source-dir", source], flags].concat());
            SyncOptions::from_args(parsed.unwrap().sync, Mode::Cli)
                .unwrap()
                .rehash_every
        };
        assert_eq!(every(&[]), 0);
        assert_eq!(every(&["--verify-every", "3"]), 3);
        assert_eq!(every(&["--rehash-every", "2", "--verify-every", "3"]), 2);
    }

    #[test]
    fn a_missing_source_names_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.source_dir = None;
        assert!(config_error(SyncOptions::from_args(a, Mode::Cli)).contains("SYNC_SOURCE_DIR"));
    }

    #[test]
    fn source_must_be_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.source_dir = Some(dir.path().join("absent"));
        assert!(config_error(SyncOptions::from_args(a, Mode::Cli)).contains("--source-dir"));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let mut a = args(dir.path());
        a.source_dir = Some(file);
        assert!(config_error(SyncOptions::from_args(a, Mode::Cli)).contains("not a directory"));
    }

    #[test]
    fn under_lambda_the_source_is_checked_when_a_sync_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        let absent = dir.path().join("mnt/data");
        a.source_dir = Some(absent.clone());
        let options = SyncOptions::from_args(a, Mode::Lambda).expect("verify and audit still run");
        let why = config_error(options.with_source_checked());
        assert!(
            why.contains("EfsAccessPointArn") && why.contains("SYNC_SOURCE_DIR"),
            "{why}"
        );
        std::fs::create_dir_all(&absent).unwrap();
        let checked = options.with_source_checked().unwrap();
        assert_eq!(checked.source_dir, absent.canonicalize().unwrap());
    }

    #[test]
    fn part_size_must_fit_s3_limits() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.part_size = MIB;
        assert!(config_error(SyncOptions::from_args(a, Mode::Cli)).contains("SYNC_PART_SIZE"));
    }

    #[test]
    fn bad_globs_fail_fast() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.exclude = vec!["a[".into()];
        assert!(config_error(SyncOptions::from_args(a, Mode::Cli)).contains("SYNC_EXCLUDE"));
    }
}
