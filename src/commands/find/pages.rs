//! `find` over paged snapshots: a page that many snapshots share is read
//! once, and its matches stand for each of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt, stream};
use globset::GlobMatcher;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::manifest::FileRecord;
use crate::manifest::paged::{self, Root};
use crate::manifest::read::{Header, read_header_fetched};
use crate::manifest::stream::{Pinned, StoredFile, relative_to};
use crate::store::Store;

/// Pages read at once.
const AHEAD: usize = 16;

/// The matching files of each page read so far, by the page's hash.
#[derive(Default)]
pub(super) struct PageMatches {
    pages: Mutex<HashMap<String, Arc<OnceCell<Vec<StoredFile>>>>>,
}

impl PageMatches {
    /// The stored files that `glob` matches in the paged snapshot at `key`,
    /// read from the version `pinned` names (whose bytes must be those it
    /// names), each page read at most once across every snapshot.
    pub(super) async fn in_snapshot(
        &self,
        store: &Store,
        key: &str,
        pinned: &Pinned,
        glob: &GlobMatcher,
    ) -> Result<Vec<StoredFile>> {
        let fetched = store
            .get_at(key, pinned.version_id.as_deref())
            .await?
            .ok_or_else(|| Error::Config(format!("manifest {} vanished", store.uri(key))))?;
        let read = read_header_fetched(fetched).await?;
        pinned.check(&store.uri(key), &read.sha256)?;
        let header = &read.header;
        let root: &Root = header.paged_root().ok_or_else(|| {
            Error::Config(format!("manifest {} is no paged snapshot", store.uri(key)))
        })?;
        let pages = paged::leaves_of(store, key, root).await?;
        let found: Vec<Vec<StoredFile>> = stream::iter(pages)
            .map(|page| async move {
                let cell = self.cell(&page);
                let files = cell
                    .get_or_try_init(|| matches_in_page(store, key, &page, header, glob))
                    .await?;
                Ok::<_, Error>(files.clone())
            })
            .buffered(AHEAD)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    fn cell(&self, page: &str) -> Arc<OnceCell<Vec<StoredFile>>> {
        let mut pages = self
            .pages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pages.entry(page.to_owned()).or_default().clone()
    }
}

/// The stored files of one page that `glob` matches, by relative path.
async fn matches_in_page(
    store: &Store,
    key: &str,
    page: &str,
    header: &Header,
    glob: &GlobMatcher,
) -> Result<Vec<StoredFile>> {
    let records: Vec<FileRecord> = paged::page_records(store, key, page, &header.bucket).await?;
    Ok(records
        .into_iter()
        .filter(FileRecord::is_stored_file)
        .filter_map(|record| {
            let path = relative_to(&header.source_dir, &record.local_path).to_owned();
            glob.is_match(&path).then_some(StoredFile {
                path,
                size: record.size_bytes,
                md5: record.md5,
            })
        })
        .collect())
}
