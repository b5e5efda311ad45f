//! The options of `sync`: what it backs up and how it sends files, and one
//! run's scope (the options narrowed by a request).

use std::path::{Path, PathBuf};

use clap::Args;
use tracing::warn;

use super::request::SyncRequest;
use crate::config::{Options, existing_dir, parse_size};
use crate::error::{Error, Result};
use crate::local::filter::Filter;
use crate::local::range::PathRange;
use crate::run::Mode;
use crate::run::shard::{self, Shard};
use crate::store::keys;
use crate::store::multipart::{MAX_PART_SIZE, MAX_SINGLE_PUT, MIN_PART_SIZE};

/// The options of `sync`, exactly as given in the environment or on the command line.
#[derive(Debug, Clone, Default, Args)]
pub struct SyncArgs {
    /// Directory to back up (default /mnt/data under Lambda).
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
    /// Only back up files whose relative path matches one of these globs.
    #[arg(long = "include", env = "SYNC_INCLUDE", value_delimiter = ',')]
    pub include: Vec<String>,
    /// Leave out files whose relative path matches one of these globs.
    #[arg(long = "exclude", env = "SYNC_EXCLUDE", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Plan and write the manifest locally, upload nothing.
    #[arg(long, env = "SYNC_DRY_RUN")]
    pub dry_run: bool,
    /// Read and hash every file on every Nth run instead of trusting unchanged
    /// size, times and inode (default 0: only when an event asks with "rehash": true).
    #[arg(long, env = "SYNC_REHASH_EVERY")]
    pub rehash_every: Option<u32>,
    /// A run that finds fewer files than this share of what the last complete
    /// run recorded (an unmounted file system, a mass deletion) is never
    /// reported as succeeded (0 turns the check off).
    #[arg(long, env = "SYNC_MIN_SOURCE_RATIO", default_value_t = 0.5)]
    pub min_source_ratio: f64,
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
    pub filter: Filter,
    pub dry_run: bool,
    pub rehash_every: u32,
    pub min_source_ratio: f64,
}

/// What one run covers: the configured settings narrowed by a request.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Directory the walk starts from, relative to the source directory
    /// (empty for the source itself).
    pub start_dir: PathBuf,
    /// Prefix of the file keys (the configured prefix plus any sub-prefix).
    pub key_prefix: String,
    pub filter: Filter,
    pub dry_run: bool,
    /// Asked for by the request: hash every file.
    pub rehash: bool,
    /// Whether the run covers only part of the source (a sub-directory, a
    /// sub-prefix or an event's filter): its manifest is then no index for
    /// later runs.
    pub narrowed: bool,
    /// The slice of the source a shard covers (all of it otherwise).
    pub range: PathRange,
    /// The shard of a sharded run this run is.
    pub shard: Option<Shard>,
}

impl Options for SyncOptions {
    type Args = SyncArgs;

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
        let source_dir = existing_dir(
            "source directory",
            &source_dir,
            "SYNC_SOURCE_DIR",
            "--source-dir",
        )?;
        if args.concurrency == 0 {
            return Err(Error::Config(
                "concurrency must be at least 1: set SYNC_CONCURRENCY or pass --concurrency".into(),
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
            // Compiled now, so a typo fails before the first run.
            filter: Filter::new(&args.include, &args.exclude)?,
            dry_run: args.dry_run,
            rehash_every: args.rehash_every.or(args.verify_every).unwrap_or(0),
            min_source_ratio: args.min_source_ratio,
        })
    }
}

impl SyncOptions {
    /// The scope of one run: the whole configuration, narrowed by `request`.
    /// A request can never leave the source directory nor change bucket or key.
    pub fn scope(&self, prefix: &str, request: &SyncRequest) -> Result<Scope> {
        if let Some(shard) = &request.shard {
            shard::check_run_id(&shard.run_id)?;
            let alone = request.subdir.is_none()
                && request.sub_prefix.is_none()
                && request.include.is_empty()
                && request.exclude.is_empty()
                && request.dry_run != Some(true);
            if !alone || self.dry_run {
                return Err(Error::Event(
                    "a shard is a slice of the whole configured run: it takes no subdir, \
                     sub_prefix, include, exclude or dry run"
                        .into(),
                ));
            }
        }
        let start_dir = match &request.subdir {
            None => PathBuf::new(),
            Some(subdir) => self.confined_subdir(subdir)?,
        };
        let sub_prefix = match &request.sub_prefix {
            None => String::new(),
            Some(sub) => {
                let sub = keys::normalize_prefix(sub);
                if sub
                    .split('/')
                    .any(|s| s == ".." || s == "." || s == keys::MANIFEST_FOLDER)
                {
                    return Err(Error::Event(format!(
                        "sub_prefix {sub:?} may not contain '.', '..' or '{}' segments",
                        keys::MANIFEST_FOLDER
                    )));
                }
                sub
            }
        };
        // An event only narrows: a file must pass the configured filter and the event's.
        let filter = self
            .filter
            .narrowed(&request.include, &request.exclude)
            .map_err(|err| match err {
                Error::Config(msg) => Error::Event(msg),
                other => other,
            })?;
        let narrowed = !start_dir.as_os_str().is_empty()
            || !sub_prefix.is_empty()
            || !request.include.is_empty()
            || !request.exclude.is_empty()
            || request.shard.is_some();
        Ok(Scope {
            start_dir,
            key_prefix: keys::join(prefix, &sub_prefix),
            filter,
            dry_run: self.dry_run || request.dry_run.unwrap_or(false),
            rehash: request.rehash.unwrap_or(false),
            narrowed,
            range: request
                .shard
                .as_ref()
                .map(|s| s.range.clone())
                .unwrap_or_default(),
            shard: request.shard.clone(),
        })
    }

    /// The sub-directory as a path relative to the source. It is checked
    /// here so that a bad event fails fast; the walk itself opens it without
    /// following links, whatever happens to it meanwhile.
    fn confined_subdir(&self, subdir: &str) -> Result<PathBuf> {
        let relative = Path::new(subdir);
        let plain = relative.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !plain {
            return Err(Error::Event(format!(
                "subdir {subdir:?} must be a relative path without '..' inside the source directory"
            )));
        }
        let joined = self.source_dir.join(relative);
        // Resolving symlinks catches a link that points outside the source.
        let resolved = joined
            .canonicalize()
            .map_err(|err| Error::Event(format!("subdir {subdir:?} cannot be opened: {err}")))?;
        if !resolved.starts_with(&self.source_dir) {
            return Err(Error::Event(format!(
                "subdir {subdir:?} resolves outside the source directory"
            )));
        }
        if !resolved.is_dir() {
            return Err(Error::Event(format!(
                "subdir {subdir:?} is not a directory"
            )));
        }
        Ok(resolved
            .strip_prefix(&self.source_dir)
            .unwrap_or(&resolved)
            .to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::multipart::MIB;

    fn args(dir: &Path) -> SyncArgs {
        SyncArgs {
            source_dir: Some(dir.to_owned()),
            concurrency: 4,
            walk_threads: 4,
            slice_files: 10_000,
            memory_budget: 256 * MIB,
            multipart_threshold: 8 * MIB,
            part_size: 8 * MIB,
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

    #[test]
    fn an_event_filter_only_narrows_the_configured_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.include = vec!["*.txt".into()];
        a.exclude = vec!["secret/**".into()];
        let settings = SyncOptions::from_args(a, Mode::Cli).unwrap();
        let scope = settings
            .scope(
                "",
                &SyncRequest {
                    include: vec!["**".into()],
                    ..SyncRequest::default()
                },
            )
            .unwrap();
        assert!(scope.filter.accepts("a.txt"));
        assert!(!scope.filter.accepts("a.bin"), "the event widened include");
        assert!(!scope.filter.accepts("secret/a.txt"));

        let scope = settings
            .scope(
                "",
                &SyncRequest {
                    include: vec!["logs/**".into()],
                    exclude: vec!["**/old.txt".into()],
                    ..SyncRequest::default()
                },
            )
            .unwrap();
        assert!(scope.filter.accepts("logs/new.txt"));
        assert!(!scope.filter.accepts("logs/old.txt"));
        assert!(
            !scope.filter.accepts("top.txt"),
            "outside the event's include"
        );
    }

    #[test]
    fn scope_is_confined_to_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src");
        std::fs::create_dir_all(source.join("sub/deeper")).unwrap();
        std::os::unix::fs::symlink(dir.path(), source.join("escape")).unwrap();
        let settings = SyncOptions::from_args(args(&source), Mode::Cli).unwrap();

        let narrowed = settings
            .scope(
                "",
                &SyncRequest {
                    subdir: Some("sub/deeper".into()),
                    sub_prefix: Some("/x/".into()),
                    ..SyncRequest::default()
                },
            )
            .unwrap();
        assert_eq!(narrowed.start_dir, Path::new("sub/deeper"));
        assert_eq!(narrowed.key_prefix, "x");

        for bad in ["../", "sub/../../x", "/etc", "escape", "missing"] {
            let result = settings.scope(
                "",
                &SyncRequest {
                    subdir: Some(bad.into()),
                    ..SyncRequest::default()
                },
            );
            assert!(matches!(result, Err(Error::Event(_))), "{bad} was accepted");
        }
        let result = settings.scope(
            "",
            &SyncRequest {
                sub_prefix: Some("a/../b".into()),
                ..SyncRequest::default()
            },
        );
        assert!(matches!(result, Err(Error::Event(_))));
    }
}
