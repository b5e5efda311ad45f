//! The skip decision. It compares the MD5 this tool recorded in the object's
//! metadata with the local MD5, never the ETag: under SSE-KMS, SSE-C and for
//! every multipart upload, S3's ETag is not the MD5 of the content. Where
//! the last signed manifest recorded the object, the metadata counts only
//! while the object is the very one recorded: whoever rewrites an object
//! can copy its `md5checksum` too.

use super::index::Recorded;
use crate::store::{Etag, NULL_VERSION, Object};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Upload(&'static str),
    Skip(&'static str),
}

pub fn decide(local_md5_hex: &str, remote: Option<&Object>, recorded: Option<&Recorded>) -> Action {
    let Some(remote) = remote else {
        return Action::Upload("not in the bucket");
    };
    if recorded.is_some_and(|recorded| !recorded.is_stored_as(remote)) {
        return Action::Upload("rewritten since this tool stored it: its metadata is not proof");
    }
    match remote.md5.as_deref() {
        Some(recorded) if recorded.eq_ignore_ascii_case(local_md5_hex) => {
            Action::Skip("unchanged: recorded md5checksum matches")
        }
        Some(_) => Action::Upload("changed: recorded md5checksum differs"),
        None => Action::Upload("object has no md5checksum metadata"),
    }
}

impl Recorded {
    /// Whether `object` is the one this record's run stored: the same ETag,
    /// and the same version where both name one. A record from before
    /// ETags were kept proves nothing either way.
    pub fn is_stored_as(&self, object: &Object) -> bool {
        let Some(etag) = &self.etag else {
            return true;
        };
        let same_etag = object.etag.as_deref().map(Etag::new).as_ref() == Some(etag);
        let version = object.version_id.as_deref().unwrap_or(NULL_VERSION);
        let same_version = self.version_id.as_deref().is_none_or(|v| v == version);
        same_etag && same_version
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
        assert!(matches!(decide(md5, Some(&opaque), None), Action::Skip(_)));
        // An ETag equal to the MD5 without metadata is no proof of content.
        let etag_only = object(None, &format!("\"{md5}\""));
        assert!(matches!(
            decide(md5, Some(&etag_only), None),
            Action::Upload(_)
        ));
        let changed = object(Some("00000000000000000000000000000000"), "\"x\"");
        assert!(matches!(
            decide(md5, Some(&changed), None),
            Action::Upload(_)
        ));
        assert_eq!(decide(md5, None, None), Action::Upload("not in the bucket"));
    }

    /// Item 2 of the trust review: an object rewritten with copied
    /// metadata is sent again, whatever its `md5checksum` says.
    #[test]
    fn a_rewritten_object_is_not_kept_on_its_metadata() {
        let md5 = "900150983cd24fb0d6963f7d28e17f72";
        let recorded = super::super::index::tests::recorded("\"e1\"", Some("v1"));
        let mut stored = object(Some(md5), "\"e1\"");
        stored.version_id = Some("v1".into());
        assert!(matches!(
            decide(md5, Some(&stored), Some(&recorded)),
            Action::Skip(_)
        ));
        let rewritten = Object {
            etag: Some("\"e2\"".into()),
            ..stored.clone()
        };
        assert!(
            matches!(decide(md5, Some(&rewritten), Some(&recorded)), Action::Upload(r) if r.starts_with("rewritten"))
        );
        // The same bytes written again are another version: not the one recorded.
        let rewritten = Object {
            version_id: Some("v2".into()),
            ..stored
        };
        assert!(
            matches!(decide(md5, Some(&rewritten), Some(&recorded)), Action::Upload(r) if r.starts_with("rewritten"))
        );
    }
}
