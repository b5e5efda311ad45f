//! One run's scope: the options of `sync` narrowed by a request. A
//! request can never leave the source directory nor change bucket or key.

use std::path::{Path, PathBuf};

use super::options::SyncOptions;
use super::request::SyncRequest;
use crate::error::{Error, Result};
use crate::local::filter::Filter;
use crate::local::range::PathRange;
use crate::run::shard::{self, Shard};
use crate::store::keys;

/// What one run covers: the configured settings narrowed by a request.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Directory the walk starts from, relative to the source directory
    /// (empty for the source itself).
    pub start_dir: PathBuf,
    /// Prefix of the file keys (the configured prefix plus any sub-prefix).
    pub key_prefix: String,
    pub filter: Filter,
    /// The event's own include and exclude globs, that narrowed `filter`.
    pub event_globs: (Vec<String>, Vec<String>),
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
            event_globs: (request.include.clone(), request.exclude.clone()),
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
    use crate::commands::sync::options::tests::args;
    use crate::config::Options;
    use crate::run::Mode;

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
