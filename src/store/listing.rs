//! ListObjectsV2 over ranges of the key space, listed at once.

use aws_sdk_s3::types::EncodingType;
use futures::{StreamExt, TryStreamExt};

use super::Store;
use crate::error::{Error, Result};

/// Listing requests in flight at once.
const LIST_CONCURRENCY: usize = 8;

/// S3 encodes listed keys like a form: a space is '+', a '+' is "%2B".
/// A key as S3 URL-encodes it in a listing or an inventory report.
pub fn decode_listed_key(key: &str) -> String {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .unwrap_or_else(|_| key.to_owned())
}

/// A slice of the key space: the keys after `after` (if any), up to and
/// including `until` (if any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub after: Option<String>,
    pub until: Option<String>,
}

/// One object as ListObjectsV2 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub etag: Option<String>,
    pub size: Option<u64>,
    /// Set by a listing of versions only.
    pub version_id: Option<String>,
    /// `None` for STANDARD.
    pub storage_class: Option<String>,
}

/// A listed storage class, `None` for STANDARD (as a HEAD names none).
pub(super) fn non_standard(class: Option<&str>) -> Option<String> {
    class.filter(|c| *c != "STANDARD").map(str::to_owned)
}

impl Store {
    /// The objects under `prefix` in `ranges`, 1,000 per request; the ranges
    /// are listed at the same time, so objects are in key order within a
    /// range, and ranges come as they finish.
    pub async fn list(&self, prefix: &str, ranges: &[KeyRange]) -> Result<Vec<Listed>> {
        let listed = std::sync::Mutex::new(Vec::new());
        self.list_each(prefix, ranges, &|object| {
            if let Ok(mut listed) = listed.lock() {
                listed.push(object);
            }
        })
        .await?;
        Ok(listed.into_inner().unwrap_or_default())
    }

    /// [`Store::list`], handing each object to `each` as its page arrives
    /// (in no particular order across ranges), so a caller that keeps only
    /// part of each object never holds the whole listing.
    pub async fn list_each(
        &self,
        prefix: &str,
        ranges: &[KeyRange],
        each: &(dyn Fn(Listed) + Sync),
    ) -> Result<()> {
        let pages = ranges.iter().map(|range| {
            self.list_range(prefix, range.after.as_deref(), range.until.as_deref(), each)
        });
        futures::stream::iter(pages)
            .buffer_unordered(LIST_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// The keys after `after` up to and including `until`. Keys are asked for
    /// URL-encoded, because XML cannot carry some characters a key may hold.
    async fn list_range(
        &self,
        prefix: &str,
        after: Option<&str>,
        until: Option<&str>,
        each: &(dyn Fn(Listed) + Sync),
    ) -> Result<()> {
        let mut token = None;
        // Whether the last key seen reached `until`: the range is then done.
        let mut reached_end = false;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .encoding_type(EncodingType::Url)
                .set_start_after(after.map(str::to_owned))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|err| Error::s3("ListObjectsV2", &self.bucket, prefix, err))?;
            self.count("ListObjectsV2");
            // Servers that ignore the request for encoding say so by not echoing it.
            let encoded = page.encoding_type() == Some(&EncodingType::Url);
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let key = if encoded {
                    decode_listed_key(key)
                } else {
                    key.to_owned()
                };
                if until.is_some_and(|end| key.as_str() > end) {
                    return Ok(());
                }
                reached_end = until.is_some_and(|end| key.as_str() >= end);
                each(Listed {
                    key,
                    etag: object.e_tag().map(str::to_owned),
                    size: object.size().and_then(|s| u64::try_from(s).ok()),
                    version_id: None,
                    storage_class: non_standard(object.storage_class().map(|c| c.as_str())),
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) && !reached_end => {
                    token = Some(next.to_owned())
                }
                _ => return Ok(()),
            }
        }
    }
}
