//! The skip decision. It compares the MD5 this tool recorded in the object's
//! metadata with the local MD5, never the ETag: under SSE-KMS, SSE-C and for
//! every multipart upload, S3's ETag is not the MD5 of the content.

use crate::store::Object;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Upload(&'static str),
    Skip(&'static str),
}

pub fn decide(local_md5_hex: &str, remote: Option<&Object>) -> Action {
    let Some(remote) = remote else {
        return Action::Upload("not in the bucket");
    };
    match remote.md5.as_deref() {
        Some(recorded) if recorded.eq_ignore_ascii_case(local_md5_hex) => {
            Action::Skip("unchanged: recorded md5checksum matches")
        }
        Some(_) => Action::Upload("changed: recorded md5checksum differs"),
        None => Action::Upload("object has no md5checksum metadata"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(md5: Option<&str>, etag: &str) -> Object {
        Object {
            md5: md5.map(str::to_owned),
            etag: Some(etag.to_owned()),
            size: Some(3),
            ..Object::default()
        }
    }

    #[test]
    fn skip_uses_recorded_md5_not_etag() {
        let md5 = "900150983cd24fb0d6963f7d28e17f72";
        // Under SSE-KMS the ETag is opaque; only the metadata counts.
        let opaque = object(Some(md5), "\"0f3c2a7e9b1d4e6f8a0b2c4d6e8f0a1b\"");
        assert!(matches!(decide(md5, Some(&opaque)), Action::Skip(_)));
        // An ETag equal to the MD5 without metadata is no proof of content.
        let etag_only = object(None, &format!("\"{md5}\""));
        assert!(matches!(decide(md5, Some(&etag_only)), Action::Upload(_)));
        let changed = object(Some("00000000000000000000000000000000"), "\"x\"");
        assert!(matches!(decide(md5, Some(&changed)), Action::Upload(_)));
        assert_eq!(decide(md5, None), Action::Upload("not in the bucket"));
    }
}
