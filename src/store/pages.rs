//! The local page cache a store may read snapshot pages through.

use std::path::Path;
use std::sync::Arc;

use super::Store;
use crate::local::page_cache::{DEFAULT_LIMIT, PageCache};

impl Store {
    /// This store, reading and keeping the snapshot pages of `prefix` in a
    /// cache in `manifest_dir` (none if it cannot be made: only slower).
    pub fn caching_pages(&self, manifest_dir: &Path, prefix: &str) -> Store {
        let cache = PageCache::open(manifest_dir, &self.bucket, prefix, DEFAULT_LIMIT);
        Store {
            page_cache: cache.map(Arc::new),
            ..self.clone()
        }
    }

    /// Whether this run knows the page to be stored in S3 (see
    /// [`PageCache::vouch`]); never without a cache.
    pub fn page_vouched(&self, sha256: &str) -> bool {
        self.page_cache.as_ref().is_some_and(|c| c.vouched(sha256))
    }

    pub fn page_vouch(&self, sha256: &str) {
        if let Some(cache) = &self.page_cache {
            cache.vouch(sha256);
        }
    }

    pub fn page_cache_get(&self, sha256: &str) -> Option<Vec<u8>> {
        self.page_cache.as_ref()?.get(sha256)
    }

    pub fn page_cache_put(&self, sha256: &str, compressed: &[u8]) {
        if let Some(cache) = &self.page_cache {
            cache.put(sha256, compressed);
        }
    }

    /// Bounds the cache, once a run is done with it; the bytes it holds.
    pub fn page_cache_trim(&self) -> Option<u64> {
        self.page_cache.as_ref().map(|c| c.trim())
    }
}
