//! Mapping local paths to S3 object keys.

use std::path::{Component, Path};

/// S3's limit on the length of an object key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Folder under the configured prefix that holds the run manifests.
pub const MANIFEST_FOLDER: &str = "_manifests";
/// Folder under the configured prefix that holds audit reports and Batch
/// Operations manifests.
pub const AUDIT_FOLDER: &str = "_audit";

/// Normalises a key prefix: no leading or trailing `/`, no empty segments.
pub fn normalize_prefix(prefix: &str) -> String {
    prefix
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Joins two normalised prefixes, either of which may be empty.
pub fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}/{rest}"),
    }
}

/// What keys under `prefix` start with: `prefix/`, or nothing at the top.
pub fn folder_of(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// Why a relative path has no object key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("file name is not valid UTF-8, so it cannot be an S3 key")]
    NotUtf8,
    #[error("path is not a plain relative path inside the source directory")]
    NotRelative,
    #[error("object key would be {0} bytes, above S3's limit of 1024")]
    TooLong(usize),
    #[error(
        "its key {0} lies in a folder reserved for run manifests, the lock and audits; not uploaded (rename or exclude the source folder)"
    )]
    Reserved(String),
}

/// The key of a source file: [`object_key`] under `key_prefix`, refused when
/// it would land in the manifest folder of the configured `prefix`, where it
/// could overwrite the lock or pose as a manifest.
pub fn file_key(prefix: &str, key_prefix: &str, relative: &Path) -> Result<String, KeyError> {
    let key = object_key(key_prefix, relative)?;
    if key.starts_with(&manifest_key(prefix, "")) || key.starts_with(&audit_key(prefix, "")) {
        return Err(KeyError::Reserved(key));
    }
    Ok(key)
}

/// What a URL-encoded key leaves as it is: the unreserved characters and `/`.
const KEY_UNENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A key URL-encoded as `x-amz-copy-source` and Batch Operations manifests
/// want it: `sse s3.txt` → `sse%20s3.txt`, `+` → `%2B`.
pub fn url_encoded(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, KEY_UNENCODED).to_string()
}

/// `bucket` and `key` of `s3://bucket/key`.
pub fn parse_s3_uri(uri: &str) -> Result<(&str, &str), String> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| "not an s3:// URI".to_owned())?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("the URI names no bucket".into());
    }
    Ok((bucket, key))
}

/// Derives `<prefix>/<relative path>` with `/` separators.
pub fn object_key(prefix: &str, relative: &Path) -> Result<String, KeyError> {
    let mut segments = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => segments.push(name.to_str().ok_or(KeyError::NotUtf8)?),
            Component::CurDir => {}
            _ => return Err(KeyError::NotRelative),
        }
    }
    if segments.is_empty() {
        return Err(KeyError::NotRelative);
    }
    let key = join(prefix, &segments.join("/"));
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong(key.len()));
    }
    Ok(key)
}

/// The key of a run's manifest: `<prefix>/_manifests/<file name>`.
pub fn manifest_key(prefix: &str, file_name: &str) -> String {
    join(prefix, &format!("{MANIFEST_FOLDER}/{file_name}"))
}

/// The key of an audit's output: `<prefix>/_audit/<file name>`.
/// The AWS partition of a region: `aws-cn` in China, `aws-us-gov` in
/// GovCloud, the isolated partitions by their prefixes, else `aws`. ARNs
/// built for a resource must carry its partition.
pub fn partition_of_region(region: &str) -> &'static str {
    const PARTITIONS: [(&str, &str); 6] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
    ];
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// The partition an ARN names (`arn:<partition>:…`).
pub fn partition_of_arn(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?
        .split(':')
        .next()
        .filter(|p| !p.is_empty())
}

/// A bucket's ARN in `partition`.
pub fn bucket_arn(partition: &str, bucket: &str) -> String {
    format!("arn:{partition}:s3:::{bucket}")
}

pub fn audit_key(prefix: &str, file_name: &str) -> String {
    join(prefix, &format!("{AUDIT_FOLDER}/{file_name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_carry_the_partition_of_their_region_or_arn() {
        assert_eq!(partition_of_region("eu-west-1"), "aws");
        assert_eq!(partition_of_region("cn-northwest-1"), "aws-cn");
        assert_eq!(partition_of_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of_region("us-isob-east-1"), "aws-iso-b");
        assert_eq!(partition_of_region("us-iso-east-1"), "aws-iso");
        assert_eq!(
            partition_of_arn("arn:aws-cn:iam::123456789012:role/r"),
            Some("aws-cn")
        );
        assert_eq!(partition_of_arn("not an arn"), None);
        assert_eq!(bucket_arn("aws-us-gov", "b"), "arn:aws-us-gov:s3:::b");
    }
    use std::path::PathBuf;

    #[test]
    fn prefix_is_normalised() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("/backups//daily/"), "backups/daily");
        assert_eq!(normalize_prefix("a"), "a");
    }

    #[test]
    fn key_has_no_double_or_leading_slash() {
        let rel = PathBuf::from("dir/sub/file.txt");
        assert_eq!(object_key("", &rel).unwrap(), "dir/sub/file.txt");
        assert_eq!(object_key("p/q", &rel).unwrap(), "p/q/dir/sub/file.txt");
        assert_eq!(
            object_key("p", Path::new("./a b/ünï.txt")).unwrap(),
            "p/a b/ünï.txt"
        );
    }

    #[test]
    fn escaping_or_empty_paths_have_no_key() {
        assert_eq!(
            object_key("p", Path::new("../x")),
            Err(KeyError::NotRelative)
        );
        assert_eq!(
            object_key("p", Path::new("/etc/passwd")),
            Err(KeyError::NotRelative)
        );
        assert_eq!(object_key("p", Path::new("")), Err(KeyError::NotRelative));
    }

    #[test]
    fn keys_over_the_s3_limit_are_refused() {
        let name = "x".repeat(1020);
        assert_eq!(
            object_key("abcd", Path::new(&name)),
            Err(KeyError::TooLong(1025))
        );
        assert!(object_key("abc", Path::new(&name)).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_have_no_key() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let rel = Path::new(OsStr::from_bytes(b"bad\xffname"));
        assert_eq!(object_key("", rel), Err(KeyError::NotUtf8));
    }

    #[test]
    fn source_files_never_map_into_the_manifest_folder() {
        for (prefix, key_prefix) in [("", ""), ("p", "p"), ("a/b", "a/b")] {
            let err = file_key(prefix, key_prefix, Path::new("_manifests/lock.json"));
            assert!(matches!(err, Err(KeyError::Reserved(_))), "{prefix:?}");
        }
        // Under a sub-prefix the same folder name is an ordinary folder.
        assert_eq!(
            file_key("p", "p/sub", Path::new("_manifests/x")).unwrap(),
            "p/sub/_manifests/x"
        );
        assert!(file_key("p", "p", Path::new("_manifests2/x")).is_ok());
    }

    #[test]
    fn manifest_keys_sit_under_the_prefix() {
        assert_eq!(manifest_key("", "m.json"), "_manifests/m.json");
        assert_eq!(manifest_key("a/b", "m.json"), "a/b/_manifests/m.json");
    }
}
