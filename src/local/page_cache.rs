//! Pages kept on local disk (the manifest directory), so a run reads its
//! last snapshot's pages without asking S3, and knows which it need not
//! send. S3 stays the truth: a cached page is checked against its hash like
//! a downloaded one, and the cache is bounded by size, oldest used first out.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::debug;

use crate::local::hash::Sha256Stream;

/// What the cache holds at most after a run: at a million files a tree's
/// pages take some 60 MB, so this keeps two snapshots' worth.
pub const DEFAULT_LIMIT: u64 = 128 << 20;

#[derive(Debug)]
pub struct PageCache {
    dir: PathBuf,
    limit: u64,
    /// Pages this run read as part of a snapshot it fetched from S3, or
    /// stored itself: what it may leave unsent. A page merely cached is
    /// not known to be in S3 (the prefix may have been emptied since).
    vouched: Mutex<HashSet<String>>,
}

impl PageCache {
    /// The cache of the backup in `bucket` under `prefix`, in `manifest_dir`:
    /// a page is known stored only where it was stored.
    pub fn open(manifest_dir: &Path, bucket: &str, prefix: &str, limit: u64) -> Option<Self> {
        let scope = Sha256Stream::of(format!("{bucket}\n{prefix}").as_bytes());
        let dir = manifest_dir.join(format!("pages-{}", &scope[..16]));
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(PageCache {
                dir,
                limit,
                vouched: Mutex::default(),
            }),
            Err(err) => {
                debug!(dir = %dir.display(), error = %err, "no page cache");
                None
            }
        }
    }

    pub fn has(&self, sha256: &str) -> bool {
        self.path(sha256).is_some_and(|path| path.exists())
    }

    /// Notes that the page is in S3: read there, or as part of a snapshot
    /// read there, or stored by this run.
    pub fn vouch(&self, sha256: &str) {
        if let Ok(mut vouched) = self.vouched.lock() {
            vouched.insert(sha256.to_owned());
        }
    }

    pub fn vouched(&self, sha256: &str) -> bool {
        self.vouched.lock().is_ok_and(|v| v.contains(sha256))
    }

    /// The cached bytes of a page, marked as used.
    pub fn get(&self, sha256: &str) -> Option<Vec<u8>> {
        let path = self.path(sha256)?;
        let bytes = std::fs::read(&path).ok()?;
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(bytes)
    }

    /// Keeps a page; a cache that cannot be written is only slower.
    pub fn put(&self, sha256: &str, compressed: &[u8]) {
        let Some(path) = self.path(sha256) else {
            return;
        };
        let partial = path.with_extension("partial");
        let kept =
            std::fs::write(&partial, compressed).and_then(|()| std::fs::rename(&partial, &path));
        if let Err(err) = kept {
            debug!(path = %path.display(), error = %err, "page not cached");
            let _ = std::fs::remove_file(&partial);
        }
    }

    /// Removes the least recently used pages until the cache is within its
    /// limit. Returns the bytes it holds then.
    pub fn trim(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut pages: Vec<(SystemTime, u64, PathBuf)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let meta = entry.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), entry.path()))
            })
            .collect();
        let mut held: u64 = pages.iter().map(|(_, len, _)| len).sum();
        pages.sort_unstable();
        for (_, len, path) in pages {
            if held <= self.limit {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                held -= len;
            }
        }
        held
    }

    /// Only a hash names a cached file: nothing else reaches the disk.
    fn path(&self, sha256: &str) -> Option<PathBuf> {
        let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| self.dir.join(sha256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_pages_within_its_limit_newest_used_last_out() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PageCache::open(dir.path(), "b", "p", 2500).unwrap();
        let names: Vec<String> = (0..3).map(|i| format!("{i}").repeat(64)).collect();
        for name in &names {
            cache.put(name, &[0; 1000]);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(cache.get(&names[0]).is_some());
        assert_eq!(cache.trim(), 2000);
        assert!(cache.has(&names[0]) && !cache.has(&names[1]) && cache.has(&names[2]));
        assert!(!cache.has("../x"), "only a hash names a page");
        assert!(!cache.vouched(&names[0]), "cached is not known stored");
        cache.vouch(&names[0]);
        assert!(cache.vouched(&names[0]));
        let other = PageCache::open(dir.path(), "b", "q", 2500).unwrap();
        assert!(!other.has(&names[0]), "another prefix has pages of its own");
    }
}
