//! Settings from environment variables and CLI flags (one definition serves
//! both), validated before any request is made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::keys;
use crate::manifest_dir;
use crate::request::RunRequest;

pub const MIB: u64 = 1024 * 1024;
/// S3's smallest part (all but the last) and largest part of a multipart upload.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * MIB;

/// Where the binary runs; it decides the defaults of the directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cli,
    Lambda,
}

/// The raw settings, exactly as given in the environment or on the command line.
#[derive(Debug, Clone, Default, Args)]
pub struct SyncArgs {
    /// Destination bucket.
    #[arg(long, env = "SYNC_BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix under which files are stored.
    #[arg(long, env = "SYNC_PREFIX", default_value = "")]
    pub prefix: String,
    /// KMS key ARN, key id or alias used for SSE-KMS.
    #[arg(long, env = "SYNC_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Directory to back up (default /mnt/data under Lambda).
    #[arg(long, env = "SYNC_SOURCE_DIR")]
    pub source_dir: Option<PathBuf>,
    /// Directory for the local copies of the manifests (default: a private
    /// per-user directory, ~/.local/state/s3-kms-sync; /tmp under Lambda).
    #[arg(long, env = "SYNC_MANIFEST_DIR")]
    pub manifest_dir: Option<PathBuf>,
    /// Files processed at once; memory stays under this times the part size.
    #[arg(long, env = "SYNC_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
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
    /// Attempts per S3 request (the SDK's standard retry with backoff and jitter).
    #[arg(long, env = "SYNC_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Lifetime of the run lock in seconds; a live run renews it, a crashed one lets it expire.
    #[arg(long, env = "SYNC_LOCK_TTL_SECS", default_value_t = 900)]
    pub lock_ttl_secs: u64,
    /// Read and hash every file on every Nth run instead of trusting unchanged
    /// size, times and inode (0: only when an event asks with "verify": true).
    #[arg(long, env = "SYNC_VERIFY_EVERY", default_value_t = 0)]
    pub verify_every: u32,
    /// Under Lambda, stop starting files this many seconds before the time limit.
    #[arg(long, env = "SYNC_DEADLINE_MARGIN_SECS", default_value_t = 60)]
    pub deadline_margin_secs: u64,
}

/// Validated settings for every run of this process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bucket: String,
    pub prefix: String,
    pub kms_key_id: String,
    pub source_dir: PathBuf,
    pub manifest_dir: PathBuf,
    pub concurrency: usize,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub dry_run: bool,
    pub max_attempts: u32,
    pub lock_ttl: Duration,
    pub deadline_margin: Duration,
    pub verify_every: u32,
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
    /// Asked for by the event: hash every file.
    pub verify: bool,
    /// Whether the run covers only part of the source (a sub-directory, a
    /// sub-prefix or an event's filter): its manifest is then no index for
    /// later runs.
    pub narrowed: bool,
}

fn missing(what: &str, env: &str, flag: &str) -> Error {
    Error::Config(format!("{what} is not set: set {env} or pass {flag}"))
}

impl Settings {
    pub fn from_args(args: SyncArgs, mode: Mode) -> Result<Self> {
        let bucket = non_empty(args.bucket)
            .ok_or_else(|| missing("the destination bucket", "SYNC_BUCKET", "--bucket"))?;
        let kms_key_id = non_empty(args.kms_key_id)
            .ok_or_else(|| missing("the KMS key", "SYNC_KMS_KEY_ID", "--kms-key-id"))?;
        let source_dir = match (args.source_dir, mode) {
            (Some(dir), _) => dir,
            (None, Mode::Lambda) => PathBuf::from("/mnt/data"),
            (None, Mode::Cli) => {
                return Err(missing(
                    "the source directory",
                    "SYNC_SOURCE_DIR",
                    "--source-dir",
                ));
            }
        };
        let source_dir = existing_dir(&source_dir, "SYNC_SOURCE_DIR", "--source-dir")?;
        let manifest_dir = match (args.manifest_dir, mode) {
            (Some(dir), _) => {
                manifest_dir::prepare(&dir)?;
                dir
            }
            // The function's /tmp is its own; nobody else writes there.
            (None, Mode::Lambda) => PathBuf::from("/tmp"),
            (None, Mode::Cli) => manifest_dir::private_default()?,
        };
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
        if args.max_attempts == 0 {
            return Err(Error::Config(
                "max attempts must be at least 1: set SYNC_MAX_ATTEMPTS or pass --max-attempts"
                    .into(),
            ));
        }
        if args.lock_ttl_secs < 3 {
            return Err(Error::Config(
                "the lock lifetime must be at least 3 seconds: set SYNC_LOCK_TTL_SECS or pass --lock-ttl-secs".into(),
            ));
        }
        // Compile the globs now so a typo fails before the first run.
        Filter::new(&args.include, &args.exclude)?;
        Ok(Settings {
            bucket,
            prefix: keys::normalize_prefix(&args.prefix),
            kms_key_id,
            source_dir,
            manifest_dir,
            concurrency: args.concurrency,
            multipart_threshold: args.multipart_threshold,
            part_size: args.part_size,
            include: args.include,
            exclude: args.exclude,
            dry_run: args.dry_run,
            max_attempts: args.max_attempts,
            lock_ttl: Duration::from_secs(args.lock_ttl_secs),
            deadline_margin: Duration::from_secs(args.deadline_margin_secs),
            verify_every: args.verify_every,
        })
    }

    /// The scope of one run: the whole configuration, narrowed by `request`.
    /// A request can never leave the source directory nor change bucket or key.
    pub fn scope(&self, request: &RunRequest) -> Result<Scope> {
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
        let configured = Filter::new(&self.include, &self.exclude)?;
        let filter = configured
            .narrowed(&request.include, &request.exclude)
            .map_err(|err| match err {
                Error::Config(msg) => Error::Event(msg),
                other => other,
            })?;
        let narrowed = !start_dir.as_os_str().is_empty()
            || !sub_prefix.is_empty()
            || !request.include.is_empty()
            || !request.exclude.is_empty();
        Ok(Scope {
            start_dir,
            key_prefix: keys::join(&self.prefix, &sub_prefix),
            filter,
            dry_run: self.dry_run || request.dry_run.unwrap_or(false),
            verify: request.verify.unwrap_or(false),
            narrowed,
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

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn existing_dir(dir: &Path, env: &str, flag: &str) -> Result<PathBuf> {
    let resolved = dir.canonicalize().map_err(|err| {
        Error::Config(format!(
            "source directory {} cannot be opened ({err}): set {env} or pass {flag}",
            dir.display()
        ))
    })?;
    if !resolved.is_dir() {
        return Err(Error::Config(format!(
            "source directory {} is not a directory: set {env} or pass {flag}",
            dir.display()
        )));
    }
    Ok(resolved)
}

/// Parses a byte count: `1048576`, `512KiB`, `8MiB`, `1GiB` (also KB/MB/GB as binary units).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 8MiB or 1048576"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => 1024 * MIB,
        _ => return Err(format!("{text:?} has an unknown unit; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> SyncArgs {
        SyncArgs {
            bucket: Some("b".into()),
            kms_key_id: Some("k".into()),
            source_dir: Some(dir.to_owned()),
            manifest_dir: Some(dir.join("manifests")),
            concurrency: 4,
            multipart_threshold: 8 * MIB,
            part_size: 8 * MIB,
            max_attempts: 3,
            lock_ttl_secs: 60,
            ..SyncArgs::default()
        }
    }

    fn config_error(result: Result<Settings>) -> String {
        match result {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(MIB));
        assert_eq!(parse_size("8MiB"), Ok(8 * MIB));
        assert_eq!(parse_size("512 KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1gb"), Ok(1024 * MIB));
        assert!(parse_size("8 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn missing_settings_name_their_fix() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.bucket = None;
        assert!(config_error(Settings::from_args(a, Mode::Cli)).contains("SYNC_BUCKET"));
        let mut a = args(dir.path());
        a.kms_key_id = Some("  ".into());
        assert!(config_error(Settings::from_args(a, Mode::Cli)).contains("--kms-key-id"));
        let mut a = args(dir.path());
        a.source_dir = None;
        assert!(config_error(Settings::from_args(a, Mode::Cli)).contains("SYNC_SOURCE_DIR"));
    }

    #[test]
    fn source_must_be_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.source_dir = Some(dir.path().join("absent"));
        assert!(config_error(Settings::from_args(a, Mode::Cli)).contains("--source-dir"));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let mut a = args(dir.path());
        a.source_dir = Some(file);
        assert!(config_error(Settings::from_args(a, Mode::Cli)).contains("not a directory"));
    }

    #[test]
    fn part_size_must_fit_s3_limits() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.part_size = MIB;
        assert!(config_error(Settings::from_args(a, Mode::Cli)).contains("SYNC_PART_SIZE"));
    }

    #[test]
    fn bad_globs_fail_fast() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.exclude = vec!["a[".into()];
        assert!(config_error(Settings::from_args(a, Mode::Cli)).contains("SYNC_EXCLUDE"));
    }

    #[test]
    fn an_event_filter_only_narrows_the_configured_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.include = vec!["*.txt".into()];
        a.exclude = vec!["secret/**".into()];
        let settings = Settings::from_args(a, Mode::Cli).unwrap();
        let scope = settings
            .scope(&RunRequest {
                include: vec!["**".into()],
                ..RunRequest::default()
            })
            .unwrap();
        assert!(scope.filter.accepts("a.txt"));
        assert!(!scope.filter.accepts("a.bin"), "the event widened include");
        assert!(!scope.filter.accepts("secret/a.txt"));

        let scope = settings
            .scope(&RunRequest {
                include: vec!["logs/**".into()],
                exclude: vec!["**/old.txt".into()],
                ..RunRequest::default()
            })
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
        let settings = Settings::from_args(args(&source), Mode::Cli).unwrap();

        let narrowed = settings
            .scope(&RunRequest {
                subdir: Some("sub/deeper".into()),
                sub_prefix: Some("/x/".into()),
                ..RunRequest::default()
            })
            .unwrap();
        assert_eq!(narrowed.start_dir, Path::new("sub/deeper"));
        assert_eq!(narrowed.key_prefix, "x");

        for bad in ["../", "sub/../../x", "/etc", "escape", "missing"] {
            let result = settings.scope(&RunRequest {
                subdir: Some(bad.into()),
                ..RunRequest::default()
            });
            assert!(matches!(result, Err(Error::Event(_))), "{bad} was accepted");
        }
        let result = settings.scope(&RunRequest {
            sub_prefix: Some("a/../b".into()),
            ..RunRequest::default()
        });
        assert!(matches!(result, Err(Error::Event(_))));
    }
}
