//! The skip decision. It compares the MD5 this tool recorded in the object's
//! metadata with the local MD5, never the ETag: under SSE-KMS, SSE-C and for
//! every multipart upload, S3's ETag is not the MD5 of the content.

use crate::config::{MAX_PART_SIZE, MIB};
use crate::remote::RemoteObject;

/// S3's limit on the number of parts of one multipart upload.
pub const MAX_PARTS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Upload(&'static str),
    Skip(&'static str),
}

pub fn decide(local_md5_hex: &str, remote: Option<&RemoteObject>) -> Action {
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

/// The part size for a file: at least `min_part`, grown in whole MiB so the
/// file fits in 10,000 parts.
pub fn part_size_for(file_size: u64, min_part: u64) -> u64 {
    let needed = file_size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(min_part).min(MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(md5: Option<&str>, etag: &str) -> RemoteObject {
        RemoteObject {
            md5: md5.map(str::to_owned),
            etag: Some(etag.to_owned()),
            size: Some(3),
            ..RemoteObject::default()
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

    #[test]
    fn parts_never_exceed_ten_thousand() {
        let min = 8 * MIB;
        assert_eq!(part_size_for(0, min), min);
        assert_eq!(part_size_for(100 * MIB, min), min);
        for size in [80_000 * MIB, 80_000 * MIB + 1, 1 << 40, 5 << 40] {
            let part = part_size_for(size, min);
            assert!(
                size.div_ceil(part) <= MAX_PARTS,
                "{size} needs too many parts"
            );
            assert_eq!(part % MIB, 0);
        }
        assert_eq!(part_size_for(80_000 * MIB + 1, min), 9 * MIB);
    }
}
