//! Include and exclude globs over paths relative to the source directory.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::hash::Sha256Stream;
use crate::error::{Error, Result};

/// Layers of include and exclude globs; a file must pass every layer.
#[derive(Debug, Clone)]
pub struct Filter {
    layers: Vec<Layer>,
    /// The first layer's globs as given: the configured scope of a run.
    configured: (Vec<String>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Layer {
    include: Option<GlobSet>,
    exclude: GlobSet,
    /// What every included path starts with, one per include glob (the
    /// glob up to its first wildcard); `None` when some path may start with
    /// anything.
    starts: Option<Vec<String>>,
}

impl Filter {
    /// An empty include list means every file is included.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Filter {
            layers: vec![Layer::new(include, exclude)?],
            configured: (include.to_vec(), exclude.to_vec()),
        })
    }

    /// This filter further narrowed: a file must pass both. Globs that are
    /// merged instead would let a wider include undo a narrower one.
    pub fn narrowed(&self, include: &[String], exclude: &[String]) -> Result<Self> {
        let mut narrowed = self.clone();
        if !include.is_empty() || !exclude.is_empty() {
            narrowed.layers.push(Layer::new(include, exclude)?);
        }
        Ok(narrowed)
    }

    /// A short, stable name for the configured globs, or `None` when they
    /// take everything: runs with other globs cover other files, so each
    /// scope's manifests are their own line of snapshots.
    pub fn scope_tag(&self) -> Option<String> {
        scope_tag(&self.configured.0, &self.configured.1)
    }

    /// The configured include and exclude globs.
    pub fn configured(&self) -> (&[String], &[String]) {
        (&self.configured.0, &self.configured.1)
    }

    /// Whether a file with this relative path (with `/` separators) is backed up.
    pub fn accepts(&self, relative: &str) -> bool {
        self.layers.iter().all(|layer| layer.accepts(relative))
    }

    /// What every path this filter accepts starts with (one of), if the
    /// include globs say: what lets a reader skip the rest of a snapshot.
    pub fn starts(&self) -> Option<&[String]> {
        self.layers.iter().find_map(|layer| layer.starts.as_deref())
    }
}

/// The scope tag of runs under these configured globs: also what a
/// manifest's signed header must give for the name it is stored under.
pub fn scope_tag(include: &[String], exclude: &[String]) -> Option<String> {
    if include.is_empty() && exclude.is_empty() {
        return None;
    }
    let mut digest = Sha256Stream::default();
    for (side, globs) in [("include", include), ("exclude", exclude)] {
        digest.update(side.as_bytes());
        for glob in globs {
            digest.update(&[0]);
            digest.update(glob.as_bytes());
        }
        digest.update(&[1]);
    }
    Some(digest.finish_hex()[..12].to_owned())
}

impl Layer {
    fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        let starts: Vec<String> = include
            .iter()
            .map(|glob| {
                glob[..glob.find(['*', '?', '[', '{', '\\']).unwrap_or(glob.len())].to_owned()
            })
            .collect();
        let bounded = !starts.is_empty() && starts.iter().all(|start| !start.is_empty());
        let include = if include.is_empty() {
            None
        } else {
            Some(build(include, "SYNC_INCLUDE or --include")?)
        };
        Ok(Layer {
            include,
            exclude: build(exclude, "SYNC_EXCLUDE or --exclude")?,
            starts: bounded.then_some(starts),
        })
    }

    fn accepts(&self, relative: &str) -> bool {
        let included = self
            .include
            .as_ref()
            .is_none_or(|set| set.is_match(relative));
        included && !self.exclude.is_match(relative)
    }
}

fn build(patterns: &[String], source: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|err| {
            Error::Config(format!("invalid glob {pattern:?} ({err}): fix {source}"))
        })?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|err| Error::Config(format!("invalid globs ({err}): fix {source}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn include_globs_say_what_paths_start_with() {
        let starts = |include: &[&str]| {
            let filter = Filter::new(&strings(include), &[]).unwrap();
            filter.starts().map(<[String]>::to_vec)
        };
        assert_eq!(starts(&[]), None);
        assert_eq!(
            starts(&["a/b.txt", "c/**"]),
            Some(strings(&["a/b.txt", "c/"]))
        );
        assert_eq!(starts(&["c/**", "**/x"]), None, "a glob may match anywhere");
    }

    #[test]
    fn no_patterns_accept_everything() {
        let filter = Filter::new(&[], &[]).unwrap();
        assert!(filter.accepts("a/b.txt"));
    }

    #[test]
    fn exclude_wins_over_include() {
        let filter = Filter::new(&strings(&["**/*.log", "*.txt"]), &strings(&["tmp/**"])).unwrap();
        assert!(filter.accepts("a.txt"));
        assert!(filter.accepts("x/y/z.log"));
        assert!(!filter.accepts("tmp/z.log"));
        assert!(!filter.accepts("a.bin"));
    }
}
