//! The one streamed manifest reader. A manifest of a million files is
//! hundreds of megabytes: it is parsed record by record, each record handed
//! to the caller and dropped, so no reader ever holds the whole document.

use std::fmt;
use std::io::Read;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::ManifestLink;
use super::paged;
use crate::error::{Error, Result};
use crate::local::hash::{Sha256Reader, Sha256Stream};
use crate::store::{self, Store};
use crate::trust::{Signature, Verdict};

/// A manifest's header: everything but its records, as far as readers need it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Header {
    #[serde(default)]
    pub run_id: String,
    /// When the run began: every stamp in the manifest was taken after it.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// The backed-up directory; file records' local paths are under it.
    #[serde(default)]
    pub source_dir: String,
    pub bucket: String,
    pub prefix: String,
    #[serde(default)]
    pub kms_key_id: String,
    /// The directory the run walked: the source, or a sub-directory of it.
    #[serde(default)]
    pub walked_dir: Option<String>,
    /// The configured globs: their scope tag is in the manifest's name.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The globs of the event that narrowed the run.
    #[serde(default)]
    pub event_include: Vec<String>,
    #[serde(default)]
    pub event_exclude: Vec<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// Whether the run covered part of the source only; `None` in a
    /// manifest written before the header said so.
    #[serde(default)]
    pub narrowed: Option<bool>,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub expected_files: Option<u64>,
    #[serde(default)]
    pub previous_manifest: Option<ManifestLink>,
    #[serde(default, alias = "full_verify")]
    pub full_rehash: bool,
    #[serde(default, alias = "runs_since_full_verify")]
    pub runs_since_full_rehash: u32,
    #[serde(default)]
    pub resume_after: Option<String>,
    /// The KMS key meant to sign the manifest; `None`: written unsigned.
    #[serde(default)]
    pub signing_key_id: Option<String>,
    /// The run's counts (what a sharded run's merge adds up), where its
    /// summary parses (an older tool's may not).
    #[serde(default, deserialize_with = "lenient")]
    pub summary: Option<super::Summary>,
    /// A paged snapshot's tree, whose records its `files` do not hold.
    #[serde(default)]
    pub root: Option<super::paged::Root>,
    /// Whether the document held its records (a local copy names its root
    /// too, and holds them all the same).
    #[serde(skip)]
    pub records_inline: bool,
}

impl Header {
    /// What its name must say of its scope.
    pub fn scope_fields(&self) -> super::ScopeFields<'_> {
        super::ScopeFields {
            source_dir: &self.source_dir,
            walked_dir: self.walked_dir.as_deref().unwrap_or(&self.source_dir),
            prefix: &self.prefix,
            configured: (&self.include, &self.exclude),
            event: (&self.event_include, &self.event_exclude),
        }
    }

    /// The root of the tree the records are in, unless the document held them.
    pub fn paged_root(&self) -> Option<&super::paged::Root> {
        self.root.as_ref().filter(|_| !self.records_inline)
    }

    /// Whether the manifest is one of runs on `bucket` under `key_prefix`:
    /// a manifest stands for nothing elsewhere.
    pub fn describes(&self, bucket: &str, key_prefix: &str) -> bool {
        self.bucket == bucket && self.prefix == key_prefix
    }

    /// How many files the run expected the source to hold, if it completed:
    /// its `expected_files` (which a shrunk run carries over, so a mount that
    /// stays empty keeps failing), else the `records` it listed.
    pub fn expected_if_complete(&self, records: u64) -> Option<u64> {
        self.complete
            .then(|| self.expected_files.unwrap_or(records))
    }
}

/// `Some` value where it parses, else `None`: a field an older tool wrote
/// differently must not make the whole header unreadable.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> std::result::Result<Option<T>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Reads a manifest, handing each record in `files` to `each` as it is
/// parsed; returns the header. `T` picks the record fields the caller needs.
pub fn read<T, F>(reader: impl Read, each: F) -> serde_json::Result<Header>
where
    T: DeserializeOwned,
    F: FnMut(T),
{
    let mut parser = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let header = parser.deserialize_map(Document {
        each,
        record: PhantomData,
    })?;
    parser.end()?;
    Ok(header)
}

/// Where this tool's manifests end their header: `files` is written last
/// (see [`super::Manifest`]), and compact, so this is where its array opens.
pub(super) const FILES_FIELD: &[u8] = b",\"files\":[";

/// More than any header this tool writes (a few kilobytes): a document with
/// no header within it is no manifest of this tool's.
pub const HEADER_LIMIT: u64 = 1 << 20;

/// The header of a manifest this tool wrote, read from the bytes before its
/// records, so that a large manifest is not parsed only to learn whose it
/// is. `None` when no header ends within `limit` bytes or it does not parse.
pub fn read_header(reader: impl Read, limit: u64) -> Option<Header> {
    let mut head = Vec::new();
    reader.take(limit).read_to_end(&mut head).ok()?;
    let Some(end) = head
        .windows(FILES_FIELD.len())
        .position(|w| w == FILES_FIELD)
    else {
        // A paged snapshot's object is all header, and names its root.
        return serde_json::from_slice::<Header>(&head)
            .ok()
            .filter(|header| header.root.is_some());
    };
    head.truncate(end);
    head.push(b'}');
    let header: Header = serde_json::from_slice(&head).ok()?;
    Some(Header {
        records_inline: true,
        ..header
    })
}

/// What [`read_fetched`] gives back.
#[derive(Debug)]
pub struct Parsed<S> {
    pub header: Header,
    /// What `each` made of the records.
    pub state: S,
    /// The SHA-256 of the bytes read: what the next link of the chain names.
    pub sha256: String,
    /// The KMS key S3 named for the manifest object: a restore needs it too.
    pub kms_key_id: Option<String>,
    /// The signature kept with the object, if any: it covers `sha256`.
    pub signature: Option<Signature>,
    /// When S3 stored the manifest, by S3's clock: what its claimed start
    /// is held to.
    pub last_modified: Option<DateTime<Utc>>,
    /// The version read, and its ETag: what a later read pins.
    pub version_id: Option<String>,
    pub etag: Option<String>,
    /// What a snapshot listing shows of it, as kept in its metadata.
    pub facts: Option<String>,
}

/// [`read`] over a manifest streaming from S3, parsed on a blocking thread
/// and hashed on the way. `state` goes to the thread and comes back.
///
/// A paged snapshot's records come from its tree beside `key`, each node
/// checked against its hash ([`paged::read_pages`]).
pub async fn read_fetched<T, S>(
    store: &Store,
    key: &str,
    object: store::Fetched,
    state: S,
    each: fn(&mut S, T),
) -> Result<Parsed<S>>
where
    T: DeserializeOwned + 'static,
    S: Send + 'static,
{
    read_fetched_narrowed(
        store,
        (key, object),
        &paged::Reading::default(),
        state,
        each,
    )
    .await
}

/// [`read_fetched`], reading of a paged snapshot only the nodes `reading`
/// needs (its paths relative to the snapshot's source); a document of the
/// first format is read whole.
pub async fn read_fetched_narrowed<T, S>(
    store: &Store,
    (key, object): (&str, store::Fetched),
    reading: &paged::Reading,
    mut state: S,
    each: fn(&mut S, T),
) -> Result<Parsed<S>>
where
    T: DeserializeOwned + 'static,
    S: Send + 'static,
{
    let mut parsed = hashed(object, move |body| {
        let header = read(body, |record| each(&mut state, record))?;
        Ok((header, state))
    })
    .await?;
    if let Some(root) = parsed.header.paged_root().cloned() {
        // No page is read for a root under a signature that does not hold
        // for its bytes (an unsigned one, or another key's, is for the
        // caller to refuse or to allow).
        let verdict = store
            .trust()
            .judge(parsed.signature.as_ref(), &parsed.sha256)
            .await?;
        let forged = matches!(verdict, Verdict::BadSignature { .. });
        if let Some(detail) = store.trust().refusal_of(&verdict).filter(|_| forged) {
            return Err(Error::Untrusted {
                key: store.uri(key),
                detail: format!("{detail}; its pages are not read"),
            });
        }
        if reading.reads_nothing() {
            return Ok(parsed);
        }
        let bucket = parsed.header.bucket.clone();
        let reading = paged::Reading {
            narrow: (reading.narrow.as_ref()).map(|n| n.under(&parsed.header.source_dir)),
            ..reading.clone()
        };
        let tree = (&root, &reading);
        parsed.state = paged::read_pages(store, key, tree, &bucket, parsed.state, each).await?;
    }
    Ok(parsed)
}

/// The header of a manifest streaming from S3 and the SHA-256 of all its
/// bytes, its records skipped unparsed: what "latest" judges a candidate
/// by, at one GET and no record held.
pub async fn read_header_fetched(object: store::Fetched) -> Result<Parsed<()>> {
    hashed(object, |body| {
        let header = read_header(body, HEADER_LIMIT)
            .ok_or_else(|| Error::Config("it has no header this tool can read".into()))?;
        Ok((header, ()))
    })
    .await
}

/// Runs `parse` over the body of `object` on a blocking thread, hashing
/// every byte on the way, those after what `parse` read included.
async fn hashed<S: Send + 'static>(
    object: store::Fetched,
    parse: impl FnOnce(&mut Sha256Reader<Box<dyn Read + Send>>) -> Result<(Header, S)> + Send + 'static,
) -> Result<Parsed<S>> {
    let kms_key_id = object.kms_key_id.clone();
    let signature = object.signature.clone();
    let last_modified = object.last_modified;
    let (version_id, etag) = (object.version_id.clone(), object.etag.clone());
    let facts = object.facts.clone();
    let mut body = Sha256Reader {
        inner: Box::new(object.into_blocking_read()) as Box<dyn Read + Send>,
        hash: Sha256Stream::default(),
    };
    tokio::task::spawn_blocking(move || {
        let (header, state) = parse(&mut body)?;
        // Trailing bytes after the document count towards the digest too.
        std::io::copy(&mut body, &mut std::io::sink())
            .map_err(|err| Error::io("read", "the manifest download", err))?;
        Ok(Parsed {
            header,
            state,
            sha256: body.hash.finish_hex(),
            kms_key_id,
            signature,
            last_modified,
            version_id,
            etag,
            facts,
        })
    })
    .await?
}

/// The top-level object: header fields are kept (they are few and small),
/// `files` is streamed.
struct Document<T, F> {
    each: F,
    record: PhantomData<fn() -> T>,
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for Document<T, F> {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a manifest object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Map::new();
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "files" => {
                    map.next_value_seed(Records {
                        each: &mut self.each,
                        record: PhantomData,
                    })?;
                    header.insert(field, Value::Null);
                }
                _ => {
                    header.insert(field, map.next_value()?);
                }
            }
        }
        let inline = header.contains_key("files");
        let header = Header::deserialize(Value::Object(header)).map_err(de::Error::custom)?;
        Ok(Header {
            records_inline: inline,
            ..header
        })
    }
}

struct Records<'a, T, F> {
    each: &'a mut F,
    record: PhantomData<fn() -> T>,
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> DeserializeSeed<'de> for Records<'_, T, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for Records<'_, T, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of file records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut records: A) -> Result<(), A::Error> {
        while let Some(record) = records.next_element::<T>()? {
            (self.each)(record);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Key {
        s3_key: String,
    }

    #[test]
    fn records_stream_out_and_the_header_comes_back() {
        let document = serde_json::json!({
            "run_id": "r", "bucket": "b", "prefix": "p", "runs_since_full_verify": 2,
            "summary": {"uploaded": 1},
            "files": [{"s3_key": "p/a", "size_bytes": 1}, {"s3_key": "p/b"}],
            "complete": true
        });
        let mut keys = Vec::new();
        let header = read(document.to_string().as_bytes(), |r: Key| {
            keys.push(r.s3_key)
        })
        .unwrap();
        assert_eq!(keys, ["p/a", "p/b"]);
        assert_eq!((header.bucket.as_str(), header.prefix.as_str()), ("b", "p"));
        assert!(header.complete);
        assert_eq!(
            header.runs_since_full_rehash, 2,
            "the old field name is read"
        );
    }

    #[test]
    fn a_broken_document_is_an_error() {
        let each = |_: Key| {};
        assert!(read(&b"{not json"[..], each).is_err());
        assert!(read(&br#"{"bucket": "b", "prefix": "p"} trailing"#[..], each).is_err());
        assert!(read(&br#"{"prefix": "p", "files": []}"#[..], each).is_err());
    }
}
