//! MD5 digests, streamed so a file is never held in memory whole.

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use md5::{Digest as _, Md5};

use crate::error::{Error, Result};

/// What a streamed hash reads at a time.
pub const READ_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Md5Digest([u8; 16]);

/// From this size on, OpenSSL's faster loop pays for starting its context.
const OPENSSL_FROM: usize = 64 * 1024;

impl Md5Digest {
    pub fn of(bytes: &[u8]) -> Self {
        if bytes.len() >= OPENSSL_FROM {
            let mut stream = Md5Stream::default();
            stream.update(bytes);
            if let Ok(digest) = stream.finish() {
                return digest;
            }
        }
        Self(Md5::digest(bytes).into())
    }

    /// Parses the hex form; `None` unless it is 32 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// Lower-case hex, as stored in the `md5checksum` metadata and the manifest.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Base64, as S3 expects in `Content-MD5`.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

/// An MD5 fed piece by piece. It runs on OpenSSL's assembly, about a fifth
/// faster than md-5 on x86-64 (docs/benchmarks.md), and on arm64, where md-5
/// has none; md-5 takes over where OpenSSL offers no MD5 (a FIPS-only provider).
#[derive(Clone)]
pub struct Md5Stream(Engine);

#[derive(Clone)]
enum Engine {
    OpenSsl(openssl::hash::Hasher),
    Portable(Md5),
    /// OpenSSL refused an update: no digest can be trusted any more.
    Failed(String),
}

impl Default for Md5Stream {
    fn default() -> Self {
        match openssl::hash::Hasher::new(openssl::hash::MessageDigest::md5()) {
            Ok(hasher) => Md5Stream(Engine::OpenSsl(hasher)),
            Err(_) => Md5Stream::portable(),
        }
    }
}

impl Md5Stream {
    /// md-5 alone: cheaper to start for a few bytes, and the reference in tests.
    pub fn portable() -> Self {
        Md5Stream(Engine::Portable(Md5::default()))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        if let Engine::OpenSsl(hasher) = &mut self.0
            && let Err(err) = hasher.update(bytes)
        {
            self.0 = Engine::Failed(err.to_string());
        }
        if let Engine::Portable(md5) = &mut self.0 {
            md5.update(bytes);
        }
    }

    /// The digest; an error only if OpenSSL failed on the way, since a digest
    /// of part of the input would pass for the whole.
    pub fn finish(self) -> Result<Md5Digest> {
        match self.0 {
            Engine::OpenSsl(mut hasher) => {
                let digest = hasher
                    .finish()
                    .map_err(|err| Error::Digest(err.to_string()))?;
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&digest);
                Ok(Md5Digest(bytes))
            }
            Engine::Portable(md5) => Ok(Md5Digest(md5.finalize().into())),
            Engine::Failed(why) => Err(Error::Digest(why)),
        }
    }
}

/// A SHA-256 fed piece by piece: the digest that ties a local copy of a
/// manifest to the one in S3.
#[derive(Default, Clone)]
pub struct Sha256Stream(sha2::Sha256);

impl Sha256Stream {
    /// The lower-case hex SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> String {
        let mut stream = Sha256Stream::default();
        stream.update(bytes);
        stream.finish_hex()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    /// Lower-case hex.
    pub fn finish_hex(self) -> String {
        hex::encode(sha2::Digest::finalize(self.0))
    }
}

/// A digest fed piece by piece.
pub trait Feed {
    fn feed(&mut self, bytes: &[u8]);
}

impl Feed for Md5Stream {
    fn feed(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Feed for Sha256Stream {
    fn feed(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Passes reads on and hashes them on the way.
pub struct HashingReader<R, H> {
    pub inner: R,
    pub hash: H,
}

/// Hashes what is read with SHA-256.
pub type Sha256Reader<R> = HashingReader<R, Sha256Stream>;

impl<R: Read, H: Feed> Read for HashingReader<R, H> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hash.feed(&buffer[..read]);
        Ok(read)
    }
}

/// Hashes a file with a fixed-size buffer; returns the digest and the bytes read.
pub fn md5_file(path: &Path) -> Result<(Md5Digest, u64)> {
    let file = std::fs::File::open(path).map_err(|err| Error::io("open", path, err))?;
    md5_read(file, path)
}

/// Hashes what `reader` yields (`path` names it in errors).
pub fn md5_read(mut file: impl Read, path: &Path) -> Result<(Md5Digest, u64)> {
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut hasher = Md5Stream::default();
    let mut total = 0u64;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io("read", path, err)),
        };
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    Ok((hasher.finish()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenSSL and md-5 give the same digest however the input is cut.
    #[test]
    fn both_engines_agree() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for cut in [1, 63, 64, 65, 4096, 65_537, 299_999] {
            let (mut fast, mut portable) = (Md5Stream::default(), Md5Stream::portable());
            assert!(
                matches!(fast.0, Engine::OpenSsl(_)),
                "OpenSSL offers no MD5 here"
            );
            for piece in data.chunks(cut) {
                fast.update(piece);
                portable.update(piece);
            }
            assert_eq!(
                fast.finish().unwrap(),
                portable.finish().unwrap(),
                "cut {cut}"
            );
        }
        let big = &data[..OPENSSL_FROM + 1];
        assert_eq!(Md5Digest::of(big), Md5Digest(Md5::digest(big).into()));
    }

    #[test]
    fn known_digests() {
        assert_eq!(Md5Digest::of(b"").hex(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(Md5Digest::of(b"").base64(), "1B2M2Y8AsgTpgAmY7PhCfg==");
        let digest = Md5Digest::of(b"x");
        assert_eq!(Md5Digest::from_hex(&digest.hex()), Some(digest));
        assert_eq!(Md5Digest::from_hex("not hex"), None);
        assert_eq!(
            Md5Digest::of(b"The quick brown fox jumps over the lazy dog").hex(),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn sha256_of_a_read() {
        let mut reader = Sha256Reader {
            inner: &b"abc"[..],
            hash: Sha256Stream::default(),
        };
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        assert_eq!(
            reader.hash.finish_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn streamed_file_digest_equals_one_shot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * READ_BUFFER + 17)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let (digest, size) = md5_file(&path).unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(digest, Md5Digest::of(&data));
    }
}
