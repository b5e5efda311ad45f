//! The manifest as compact JSON, hashed while it is written.

use std::io::Write;
use std::path::Path;

use super::Manifest;
use super::local_dir::create_private;
use super::read::FILES_FIELD;
use super::spool::SortedRecords;
use crate::error::{Error, Result};
use crate::local::hash::{Md5Digest, Md5Stream, Sha256Stream};

impl Manifest {
    /// Writes the local copy, readable by its owner only, streamed through a
    /// temporary file so that neither memory holds the whole document nor a
    /// reader sees half of it. Returns the digests of what was written.
    pub fn write_local(&self, path: &Path, records: &SortedRecords) -> Result<Written> {
        replace_file(path, |file, partial| {
            let (out, written) = self.write_hashed(std::io::BufWriter::new(file), records)?;
            let file = out
                .into_inner()
                .map_err(|err| Error::io("write", partial, err.into_error()))?;
            Ok((file, written))
        })
    }

    /// A paged snapshot's object: the header without `files`, whose `root`
    /// names where the records are.
    pub fn snapshot_object(&self) -> Result<Vec<u8>> {
        let serde_json::Value::Object(mut fields) = serde_json::to_value(self)? else {
            return Err(Error::Config("a manifest is not an object".into()));
        };
        fields.remove("files");
        Ok(serde_json::to_vec(&fields)?)
    }

    /// [`Manifest::write_local`], gzip-compressed (at its fastest level): a
    /// paged snapshot's local copy, the run's audit record, is read by no
    /// later run, and at a million files its JSON would take most of
    /// Lambda's 512 MB `/tmp`. `zcat` or `gunzip -c` reads it.
    pub fn write_local_compressed(&self, path: &Path, records: &SortedRecords) -> Result<Written> {
        replace_file(path, |file, partial| {
            let io = |err| Error::io("write", partial, err);
            let gzip = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(file),
                flate2::Compression::fast(),
            );
            let (gzip, written) = self.write_hashed(gzip, records)?;
            let file = gzip
                .finish()
                .map_err(io)?
                .into_inner()
                .map_err(|err| io(err.into_error()))?;
            Ok((file, written))
        })
    }

    /// The local copy of a paged snapshot whose records this run never held
    /// (a merge's): its object, which names the root, as it is uploaded.
    pub fn write_object_local(&self, path: &Path, files: u64, bytes: u64) -> Result<Written> {
        let object = self.snapshot_object()?;
        replace_file(path, |mut file, partial| {
            std::io::Write::write_all(&mut file, &object)
                .map_err(|err| Error::io("write", partial, err))?;
            let written = Written {
                md5: crate::local::hash::Md5Digest::of(&object),
                sha256: crate::local::hash::Sha256Stream::of(&object),
                files,
                bytes,
            };
            Ok((file, written))
        })
    }

    /// The document in memory, with its digests: the upload when no local
    /// copy could be written.
    pub fn to_json_with_digests(&self, records: &SortedRecords) -> Result<(Vec<u8>, Written)> {
        self.write_hashed(Vec::new(), records)
    }

    /// Writes compact JSON to `out`, hashing it on the way: at a million
    /// files every byte of indentation counts (`jq .` prints it readably).
    /// The header is this manifest (whose own `files` are left empty), the
    /// records come from `records`, in order, one at a time.
    fn write_hashed<W: std::io::Write>(
        &self,
        out: W,
        records: &SortedRecords,
    ) -> Result<(W, Written)> {
        let mut out = HashingWriter {
            inner: out,
            md5: Md5Stream::default(),
            sha256: Sha256Stream::default(),
        };
        let header = serde_json::to_vec(self)?;
        // `files` is the document's last field: open its array and fill it.
        let open = header
            .strip_suffix(b"]}")
            .filter(|h| h.ends_with(FILES_FIELD) && self.files.is_empty())
            .ok_or_else(|| {
                Error::Config("a manifest to write must leave its records to the spool".into())
            })?;
        let io = |err| Error::io("write", "manifest", err);
        out.write_all(open).map_err(io)?;
        let (mut files, mut bytes) = (0, 0);
        for (i, record) in records.iter()?.enumerate() {
            if i > 0 {
                out.write_all(b",").map_err(io)?;
            }
            let record = record?;
            if record.kind == super::EntryKind::File && record.status.is_stored() {
                files += 1;
                bytes += record.size_bytes;
            }
            serde_json::to_writer(&mut out, &record)?;
        }
        out.write_all(b"]}").map_err(io)?;
        let written = Written {
            md5: out.md5.finish()?,
            sha256: out.sha256.finish_hex(),
            files,
            bytes,
        };
        Ok((out.inner, written))
    }
}

/// Writes `path` whole or not at all: into a private file beside it, synced,
/// then renamed over it.
fn replace_file<T>(
    path: &Path,
    write: impl FnOnce(std::fs::File, &Path) -> Result<(std::fs::File, T)>,
) -> Result<T> {
    let partial = path.with_extension("json.partial");
    let file = create_private(&partial).map_err(|err| Error::io("create", &partial, err))?;
    let (file, written) = write(file, &partial)?;
    file.sync_all()
        .map_err(|err| Error::io("write", &partial, err))?;
    std::fs::rename(&partial, path).map_err(|err| Error::io("rename", path, err))?;
    Ok(written)
}

/// The digests of a written manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub md5: Md5Digest,
    /// Hex SHA-256: stored with the S3 object, so a local copy can be proven.
    pub sha256: String,
    /// Files the snapshot holds (stored, with an object), and their bytes.
    pub files: u64,
    pub bytes: u64,
}

/// Passes bytes on and hashes them on the way.
struct HashingWriter<W> {
    inner: W,
    md5: Md5Stream,
    sha256: Sha256Stream,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.md5.update(&bytes[..written]);
        self.sha256.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
