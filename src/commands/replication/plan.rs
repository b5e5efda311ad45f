//! What each source bucket should look like, from its rows: the rules of its
//! replication configuration (one per row, this tool's rule ids), the
//! destinations to create, and the tags; and the changes, as printed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::sheet::Row;
use crate::local::hash::Sha256Stream;
use crate::store::ObjectLock;
use crate::store::bucket::ReplicationRule;
use crate::store::keys::{bucket_arn, partition_of_region};

/// Rule ids this tool writes start with this; a rule with another id is
/// someone else's, and its configuration is never overwritten.
pub const RULE_ID_PREFIX: &str = "s3-kms-sync:";
/// The source bucket's tag holding a digest of the configuration this tool
/// applied: a second apply with the same sheet changes nothing.
pub const APPLIED_TAG: &str = "s3-kms-sync:replication";

/// A destination bucket to create or check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub bucket: String,
    pub region: String,
    pub replica_kms_key_arn: Option<String>,
    /// Another account's bucket is that account's to create (replica.yaml).
    pub account: Option<String>,
}

/// One source bucket's wanted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub source: String,
    pub rows: Vec<usize>,
    pub role_arn: String,
    pub rules: Vec<ReplicationRule>,
    pub targets: Vec<Target>,
    pub tags: BTreeMap<String, String>,
    pub existing_objects: bool,
}

/// One change, as `plan` prints it and `apply` makes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    EnableVersioning {
        bucket: String,
    },
    CreateBucket {
        bucket: String,
        region: String,
        /// None for us-east-1, which takes no location constraint.
        location_constraint: Option<String>,
        /// Created with Object Lock, as its source has it.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        object_lock: bool,
    },
    /// Object Lock as the source has it: a locked source replicates only to
    /// a locked destination.
    ObjectLock {
        bucket: String,
        #[serde(flatten)]
        lock: ObjectLock,
    },
    BlockPublicAccess {
        bucket: String,
    },
    DefaultEncryption {
        bucket: String,
        sse_algorithm: &'static str,
        kms_master_key_id: String,
        bucket_key_enabled: bool,
    },
    PutReplication {
        bucket: String,
        replication_configuration: Value,
    },
    Tag {
        bucket: String,
        tags: BTreeMap<String, String>,
    },
}

/// The rows grouped by source bucket, in sheet order.
pub fn desired(rows: &[Row], role_arn: &str) -> Vec<Desired> {
    let mut by_source: Vec<Desired> = Vec::new();
    for row in rows {
        let index = match by_source.iter().position(|d| d.source == row.source) {
            Some(index) => index,
            None => {
                by_source.push(Desired {
                    source: row.source.clone(),
                    rows: Vec::new(),
                    role_arn: role_arn.to_owned(),
                    rules: Vec::new(),
                    targets: Vec::new(),
                    tags: BTreeMap::new(),
                    existing_objects: false,
                });
                by_source.len() - 1
            }
        };
        let desired = &mut by_source[index];
        desired.rows.push(row.number);
        desired.rules.push(ReplicationRule {
            id: rule_id(&row.target, &row.prefix),
            priority: desired.rules.len() as i32 + 1,
            prefix: row.prefix.clone(),
            delete_markers: row.delete_markers,
            destination: bucket_arn(partition_of_region(&row.region), &row.target),
            storage_class: row.storage_class.clone(),
            replica_kms_key_arn: row.replica_kms_key_arn.clone(),
            account: row.target_account.clone(),
        });
        let target = Target {
            bucket: row.target.clone(),
            region: row.region.clone(),
            replica_kms_key_arn: row.replica_kms_key_arn.clone(),
            account: row.target_account.clone(),
        };
        if !desired.targets.contains(&target) {
            desired.targets.push(target);
        }
        desired.tags.extend(row.tags.clone());
        desired.existing_objects |= row.existing_objects;
    }
    for desired in &mut by_source {
        desired
            .tags
            .insert(APPLIED_TAG.to_owned(), fingerprint(desired));
    }
    by_source
}

/// A rule id that names the destination and prefix, within S3's 255 characters.
fn rule_id(target: &str, prefix: &str) -> String {
    format!("{RULE_ID_PREFIX}{target}:{prefix}")
        .chars()
        .take(255)
        .collect()
}

/// A digest of the configuration: role and rules.
fn fingerprint(desired: &Desired) -> String {
    let mut digest = Sha256Stream::default();
    digest.update(
        replication_json(&desired.role_arn, &desired.rules)
            .to_string()
            .as_bytes(),
    );
    digest.finish_hex()[..16].to_owned()
}

/// The replication configuration in S3's API shape, as printed by `plan`.
pub fn replication_json(role_arn: &str, rules: &[ReplicationRule]) -> Value {
    let status = |on: bool| if on { "Enabled" } else { "Disabled" };
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let mut destination = json!({"Bucket": rule.destination});
            if let Some(key) = &rule.replica_kms_key_arn {
                destination["EncryptionConfiguration"] = json!({"ReplicaKmsKeyID": key});
            }
            if let Some(class) = &rule.storage_class {
                destination["StorageClass"] = json!(class);
            }
            if let Some(account) = &rule.account {
                destination["Account"] = json!(account);
                destination["AccessControlTranslation"] = json!({"Owner": "Destination"});
            }
            let mut rule_json = json!({
                "ID": rule.id,
                "Priority": rule.priority,
                "Status": "Enabled",
                "Filter": {"Prefix": rule.prefix},
                "DeleteMarkerReplication": {"Status": status(rule.delete_markers)},
                "Destination": destination,
            });
            // SSE-KMS objects are opted in only where a replica key is named.
            if rule.replica_kms_key_arn.is_some() {
                rule_json["SourceSelectionCriteria"] =
                    json!({"SseKmsEncryptedObjects": {"Status": "Enabled"}});
            }
            rule_json
        })
        .collect();
    json!({"Role": role_arn, "Rules": rules})
}

/// S3's location constraint for a region: none for us-east-1.
pub fn location_constraint(region: &str) -> Option<String> {
    (region != "us-east-1").then(|| region.to_owned())
}

/// The IAM statements the replication role needs for `desired`: reading
/// the source (with its key, when known) and encrypting under each replica key.
pub fn role_needs(
    desired: &Desired,
    source_region: &str,
    source_key: Option<&str>,
    source_locked: bool,
) -> Value {
    let source_arn = bucket_arn(partition_of_region(source_region), &desired.source);
    let mut statements = vec![json!({
        "Effect": "Allow",
        "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
        "Resource": source_arn,
    })];
    let mut reads = vec![
        "s3:GetObjectVersionForReplication",
        "s3:GetObjectVersionAcl",
        "s3:GetObjectVersionTagging",
    ];
    if source_locked {
        // Replication carries each version's retention and legal hold.
        reads.extend(["s3:GetObjectRetention", "s3:GetObjectLegalHold"]);
    }
    statements.push(json!({
        "Effect": "Allow",
        "Action": reads,
        "Resource": format!("{source_arn}/*"),
    }));
    statements.push(json!({
        "Effect": "Allow",
        "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags", "s3:ObjectOwnerOverrideToBucketOwner"],
        "Resource": desired.rules.iter().map(|r| format!("{}/*", r.destination)).collect::<Vec<_>>(),
    }));
    if let Some(key) = source_key {
        // With Bucket Keys the encryption context is the bucket's ARN. The
        // bucket's default key only: objects written under other keys need
        // theirs listed here too (`audit` finds them, as `wrong_key`).
        statements.push(json!({
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key,
            "Condition": {
                "StringEquals": {"kms:ViaService": format!("s3.{source_region}.amazonaws.com")},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [source_arn.clone(), format!("{source_arn}/*")]},
            },
        }));
    }
    for target in desired
        .targets
        .iter()
        .filter(|t| t.replica_kms_key_arn.is_some())
    {
        let target_arn = bucket_arn(partition_of_region(&target.region), &target.bucket);
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": target.replica_kms_key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": format!("s3.{}.amazonaws.com", target.region)},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [target_arn.clone(), format!("{target_arn}/*")]},
            },
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_the_partition_of_each_buckets_region() {
        let rows = [row(1, "src", "dst", "cn-northwest-1")];
        let plans = desired(&rows, "arn:aws-cn:iam::123456789012:role/r");
        assert_eq!(plans[0].rules[0].destination, "arn:aws-cn:s3:::dst");
        let needs = role_needs(&plans[0], "cn-north-1", None, false).to_string();
        assert!(needs.contains("arn:aws-cn:s3:::src/*"), "{needs}");
        assert!(!needs.contains("arn:aws:s3"), "{needs}");
    }

    fn row(number: usize, source: &str, target: &str, region: &str) -> Row {
        Row {
            number,
            source: source.into(),
            region: region.into(),
            storage_class: None,
            prefix: "p/".into(),
            delete_markers: false,
            existing_objects: false,
            target: target.into(),
            replica_kms_key_arn: Some(format!("arn:aws:kms:{region}:123456789012:key/k")),
            target_account: None,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn rows_of_one_source_make_one_configuration_that_opts_sse_kms_in() {
        let rows = [
            row(2, "a", "a-target", "eu-west-1"),
            row(3, "b", "b-target", "us-east-1"),
            row(4, "a", "a-far", "us-east-1"),
        ];
        let plans = desired(&rows, "arn:aws:iam::123456789012:role/r");
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].rows, [2, 4]);
        let json = replication_json(&plans[0].role_arn, &plans[0].rules);
        let rules = json["Rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1]["Priority"], 2);
        for rule in rules {
            assert_eq!(
                rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"],
                "Enabled"
            );
            assert!(rule["Destination"]["EncryptionConfiguration"]["ReplicaKmsKeyID"].is_string());
            assert!(rule["ID"].as_str().unwrap().starts_with(RULE_ID_PREFIX));
        }
        assert_eq!(location_constraint("us-east-1"), None);
        assert_eq!(
            location_constraint("eu-west-1").as_deref(),
            Some("eu-west-1")
        );
    }

    #[test]
    fn the_applied_tag_changes_with_the_configuration() {
        let one = desired(
            &[row(2, "a", "a-target", "eu-west-1")],
            "arn:aws:iam::1:role/r",
        );
        let mut changed_row = row(2, "a", "a-target", "eu-west-1");
        changed_row.delete_markers = true;
        let other = desired(&[changed_row], "arn:aws:iam::1:role/r");
        assert_ne!(one[0].tags[APPLIED_TAG], other[0].tags[APPLIED_TAG]);
        let again = desired(
            &[row(2, "a", "a-target", "eu-west-1")],
            "arn:aws:iam::1:role/r",
        );
        assert_eq!(one[0].tags, again[0].tags);
    }
}
