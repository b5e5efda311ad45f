//! Multipart uploads as S3 answers them: an upload id, parts kept by
//! number, and on completion the parts joined in the order the request
//! lists them, with the ETag S3 gives a multipart object (the MD5 of the
//! parts' MD5s, a dash, and the count of parts).

use std::collections::BTreeMap;

use bytes::Bytes;
use md5::{Digest, Md5};
use s3_kms_sync::local::hash::Md5Digest;

/// An upload under way.
pub struct Upload {
    pub key: String,
    pub metadata: Vec<(String, String)>,
    pub kms_key: String,
    parts: BTreeMap<u32, Bytes>,
}

impl Upload {
    pub fn new(key: &str, metadata: Vec<(String, String)>, kms_key: String) -> Self {
        Upload {
            key: key.to_owned(),
            metadata,
            kms_key,
            parts: BTreeMap::new(),
        }
    }

    /// Keeps a part; its ETag.
    pub fn part(&mut self, number: u32, body: Bytes) -> String {
        let etag = format!("\"{}\"", Md5Digest::of(&body).hex());
        self.parts.insert(number, body);
        etag
    }

    /// The object the parts named in `request` (a CompleteMultipartUpload
    /// body) make, and its ETag; `None` when one named part was never sent.
    pub fn complete(&self, request: &str) -> Option<(Bytes, String)> {
        let numbers = request
            .split("<PartNumber>")
            .skip(1)
            .map(|rest| rest.split('<').next()?.trim().parse::<u32>().ok());
        let mut body = Vec::new();
        let mut digests = Vec::new();
        let mut count = 0;
        for number in numbers {
            let part = self.parts.get(&number?)?;
            body.extend_from_slice(part);
            digests.extend_from_slice(&Md5::digest(part));
            count += 1;
        }
        let etag = format!("\"{}-{count}\"", Md5Digest::of(&digests).hex());
        Some((Bytes::from(body), etag))
    }
}

/// InitiateMultipartUpload's answer.
pub fn initiated(bucket: &str, key: &str, upload_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{bucket}</Bucket><Key>{}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>",
        escape(key)
    )
}

/// CompleteMultipartUpload's answer.
pub fn completed(bucket: &str, key: &str, etag: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{bucket}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
        escape(key),
        etag.replace('"', "&quot;")
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
