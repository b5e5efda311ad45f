//! One node of a snapshot's tree: a page of records or an index over the
//! level below, serialised the same way every time, compressed, and named
//! by the SHA-256 of its plain bytes.

use std::cell::RefCell;
use std::io::Read;

use flate2::read::ZlibDecoder;
use flate2::{Compress, Compression, FlushCompress, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::local::hash::Sha256Stream;

/// More plain bytes than any node this tool writes (256 records, or 512
/// index entries, of a few kilobytes at most): what a download may inflate to.
const PLAIN_LIMIT: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub(super) enum Node {
    /// Records in path order, each as [`super::writer`] projects it.
    Records { records: Vec<Map<String, Value>> },
    /// The nodes of `level - 1`, in path order.
    Index { level: u32, entries: Vec<Entry> },
}

/// What an index says of one node below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The first path under the node.
    pub first: String,
    /// Records under it, and the stored files among them with their bytes.
    pub records: u64,
    #[serde(default)]
    pub files: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// A node as stored: its name, and its compressed bytes.
pub(super) struct Encoded {
    pub sha256: String,
    pub compressed: Vec<u8>,
}

impl Node {
    pub(super) fn level(&self) -> u32 {
        match self {
            Node::Records { .. } => 0,
            Node::Index { level, .. } => *level,
        }
    }

    pub(super) fn encode(&self) -> Result<Encoded> {
        let plain = serde_json::to_vec(self)?;
        let sha256 = Sha256Stream::of(&plain);
        let compressed = zlib(&plain)?;
        Ok(Encoded { sha256, compressed })
    }

    /// The node stored as `compressed`, if its plain bytes hash to `sha256`;
    /// else an error that names it.
    pub(super) fn decode(compressed: &[u8], sha256: &str, uri: &str) -> Result<Node> {
        let refused = |detail: String| Error::Untrusted {
            key: uri.to_owned(),
            detail,
        };
        let mut plain = Vec::new();
        ZlibDecoder::new(compressed)
            .take(PLAIN_LIMIT)
            .read_to_end(&mut plain)
            .map_err(|err| refused(format!("its page does not inflate: {err}")))?;
        let read = Sha256Stream::of(&plain);
        if read != sha256 {
            return Err(refused(format!(
                "its page's SHA-256 is {read}, not {sha256}, the hash it is named by: it was changed after it was written"
            )));
        }
        serde_json::from_slice(&plain)
            .map_err(|err| refused(format!("its page is not a snapshot node: {err}")))
    }
}

thread_local! {
    /// One compressor a thread, reset for each node. A new one per node
    /// allocates and frees some 300 KB of tables thousands of times a run,
    /// which glibc serves from the heap once its mmap threshold has risen,
    /// and the heap then held over a gigabyte at 200,000 files (its peak
    /// use under 60 MB).
    static COMPRESS: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), true));
}

/// `plain` in the zlib format.
fn zlib(plain: &[u8]) -> Result<Vec<u8>> {
    let failed = |err: flate2::CompressError| {
        Error::io("compress", "a snapshot page", std::io::Error::other(err))
    };
    COMPRESS.with_borrow_mut(|compress| {
        compress.reset();
        let mut out = Vec::with_capacity(plain.len() / 4 + 64);
        loop {
            let read = compress.total_in() as usize;
            match compress
                .compress_vec(&plain[read..], &mut out, FlushCompress::Finish)
                .map_err(failed)?
            {
                Status::StreamEnd => return Ok(out),
                _ => out.reserve(out.capacity().max(256)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Node {
        let record = serde_json::json!({"local_path": "/d/a", "size_bytes": 3});
        let Value::Object(record) = record else {
            unreachable!()
        };
        Node::Records {
            records: vec![record],
        }
    }

    #[test]
    fn a_node_reads_back_under_its_hash() {
        let encoded = page().encode().unwrap();
        let node = Node::decode(&encoded.compressed, &encoded.sha256, "s3://b/p").unwrap();
        assert_eq!(node, page());
        assert_eq!(page().encode().unwrap().sha256, encoded.sha256);
    }

    #[test]
    fn a_node_under_another_hash_is_refused_by_name() {
        let other = Node::Index {
            level: 1,
            entries: vec![],
        }
        .encode()
        .unwrap();
        let err = Node::decode(
            &other.compressed,
            &page().encode().unwrap().sha256,
            "s3://b/p",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("s3://b/p") && err.contains("changed"), "{err}");
        let err = Node::decode(b"not zlib", "00", "s3://b/q").unwrap_err();
        assert!(err.to_string().contains("s3://b/q"), "{err}");
    }
}
