//! Brings one source bucket to its wanted state, or (for `plan`) says what
//! that would change. The order is the one S3 requires: versioning on both
//! sides before a replication rule names them.

use super::Clients;
use super::plan::{
    APPLIED_TAG, Change, Desired, RULE_ID_PREFIX, Target, location_constraint, replication_json,
};
use crate::error::{Error, Result};
use crate::store::ObjectLock;
use crate::store::bucket::BucketAdmin;

/// What reconciling one source bucket found.
#[derive(Debug)]
pub enum Reconciled {
    /// The changes made (or, for `plan`, to make); empty when none.
    Changes {
        changes: Vec<Change>,
        source_region: String,
        source_key: Option<String>,
        /// Whether the source has Object Lock.
        source_locked: bool,
        /// What the rules will not replicate, said before it surprises.
        warning: Option<String>,
    },
    /// The bucket replicates under rules this tool did not write.
    Conflict(String),
}

pub async fn reconcile(clients: &Clients, desired: &Desired, apply: bool) -> Result<Reconciled> {
    let source = clients.admin_of(&desired.source).await?;
    let source_region = clients.region_of(&desired.source).await?;
    // Read everything before changing anything: a conflict changes nothing.
    let current = source.replication().await?;
    if let Some((_, rules)) = &current {
        let foreign: Vec<&str> = rules
            .iter()
            .map(|r| r.id.as_str())
            .filter(|id| !id.starts_with(RULE_ID_PREFIX))
            .collect();
        if !foreign.is_empty() {
            return Ok(Reconciled::Conflict(format!(
                "s3://{} already replicates under rules this tool did not write ({}); it is left as it is",
                desired.source,
                foreign.join(", ")
            )));
        }
    }
    let source_key = match source.default_kms_key().await? {
        Some((key, _)) => Some(key_arn(clients, &source_region, &key).await?),
        None => None,
    };
    let keyless: Vec<usize> = desired
        .rules
        .iter()
        .zip(&desired.rows)
        .filter(|(rule, _)| rule.replica_kms_key_arn.is_none())
        .map(|(_, row)| *row)
        .collect();
    if source_key.is_some() && !keyless.is_empty() {
        return Ok(Reconciled::Conflict(format!(
            "s3://{} is SSE-KMS by default, and row(s) {keyless:?} name no replica key: add the \"Replica KMS Key ARN\" column (its objects replicate only under a key the rule names); the bucket is left as it is",
            desired.source
        )));
    }
    let tags = source.tags().await?;
    let source_lock = source.object_lock().await?;

    let mut changes = Vec::new();
    if !source.versioning_enabled().await? {
        changes.push(Change::EnableVersioning {
            bucket: desired.source.clone(),
        });
    }
    for target in &desired.targets {
        // Another account's bucket is created there (replica.yaml); S3
        // refuses the rule if it is missing or unversioned.
        if target.account.is_none() {
            changes.extend(target_changes(clients, target, source_lock.as_ref()).await?);
        }
    }
    let applied = current.as_ref().is_some_and(|(role, rules)| {
        *role == desired.role_arn
            && rules.len() == desired.rules.len()
            && rules.iter().zip(&desired.rules).all(|(have, want)| {
                have.id == want.id && have.destination == want.destination && have.enabled
            })
            && tags.get(APPLIED_TAG) == desired.tags.get(APPLIED_TAG)
    });
    if !applied {
        changes.push(Change::PutReplication {
            bucket: desired.source.clone(),
            replication_configuration: replication_json(&desired.role_arn, &desired.rules),
        });
    }
    let mut merged = tags.clone();
    merged.extend(desired.tags.clone());
    if merged != tags {
        changes.push(Change::Tag {
            bucket: desired.source.clone(),
            tags: merged,
        });
    }
    if apply {
        for change in &changes {
            make(clients, desired, change).await?;
        }
    }
    let warning = (!keyless.is_empty()).then(|| {
        format!(
            "row(s) {keyless:?} name no replica key: s3://{} is not SSE-KMS by default, but any SSE-KMS object in it will not replicate unless a \"Replica KMS Key ARN\" is added",
            desired.source
        )
    });
    Ok(Reconciled::Changes {
        changes,
        source_region,
        source_key,
        source_locked: source_lock.is_some(),
        warning,
    })
}

/// The ARN of the key a bucket's default encryption names as stored (a key
/// id, an alias or an ARN): IAM needs the key's ARN, and an alias in a
/// policy's Resource applies to the alias, not to the key.
async fn key_arn(clients: &Clients, region: &str, key: &str) -> Result<String> {
    if key.starts_with("arn:") && key.contains(":key/") {
        return Ok(key.to_owned());
    }
    let described = clients
        .kms_in(region)
        .describe_key()
        .key_id(key)
        .send()
        .await
        .map_err(|err| {
            Error::Config(format!(
                "cannot resolve the source bucket's default key {key} to its ARN (DescribeKey: {}): grant kms:DescribeKey on it",
                aws_sdk_kms::error::DisplayErrorContext(&err)
            ))
        })?;
    described
        .key_metadata()
        .and_then(|m| m.arn())
        .map(str::to_owned)
        .ok_or_else(|| Error::Config(format!("DescribeKey of {key} named no ARN")))
}

/// What a destination in this account lacks: the bucket itself, versioning,
/// public access blocked, Object Lock when the source has it, default
/// SSE-KMS under the replica key with a Bucket Key.
async fn target_changes(
    clients: &Clients,
    target: &Target,
    source_lock: Option<&ObjectLock>,
) -> Result<Vec<Change>> {
    let admin = BucketAdmin::new(clients.in_region(&target.region), &target.bucket);
    let bucket = || target.bucket.clone();
    let lock = |lock: &ObjectLock| Change::ObjectLock {
        bucket: bucket(),
        lock: lock.clone(),
    };
    // Without a replica key the destination keeps S3's default (SSE-S3).
    let encryption = |key: &String| Change::DefaultEncryption {
        bucket: bucket(),
        sse_algorithm: "aws:kms",
        kms_master_key_id: key.clone(),
        bucket_key_enabled: true,
    };
    if !admin.exists().await? {
        let mut changes = vec![
            Change::CreateBucket {
                bucket: bucket(),
                region: target.region.clone(),
                location_constraint: location_constraint(&target.region),
                object_lock: source_lock.is_some(),
            },
            Change::BlockPublicAccess { bucket: bucket() },
            Change::EnableVersioning { bucket: bucket() },
        ];
        // A new bucket's default retention, as the source's.
        changes.extend(source_lock.filter(|l| l.mode.is_some()).map(lock));
        changes.extend(target.replica_kms_key_arn.as_ref().map(encryption));
        return Ok(changes);
    }
    let mut changes = Vec::new();
    if !admin.public_access_blocked().await? {
        changes.push(Change::BlockPublicAccess { bucket: bucket() });
    }
    if !admin.versioning_enabled().await? {
        changes.push(Change::EnableVersioning { bucket: bucket() });
    }
    if let Some(source_lock) = source_lock
        && admin.object_lock().await?.is_none()
    {
        changes.push(lock(source_lock));
    }
    if let Some(key) = &target.replica_kms_key_arn
        && admin.default_kms_key().await? != Some((key.clone(), true))
    {
        changes.push(encryption(key));
    }
    Ok(changes)
}

async fn make(clients: &Clients, desired: &Desired, change: &Change) -> Result<()> {
    match change {
        Change::EnableVersioning { bucket } => {
            clients.admin_of(bucket).await?.enable_versioning().await
        }
        Change::CreateBucket {
            bucket,
            region,
            object_lock,
            ..
        } => {
            let admin = BucketAdmin::new(clients.in_region(region), bucket);
            admin.create(region, *object_lock).await?;
            clients.remember(bucket, region);
            Ok(())
        }
        Change::BlockPublicAccess { bucket } => {
            clients.admin_of(bucket).await?.block_public_access().await
        }
        Change::DefaultEncryption {
            bucket,
            kms_master_key_id,
            ..
        } => {
            clients
                .admin_of(bucket)
                .await?
                .encrypt_by_default(kms_master_key_id)
                .await
        }
        Change::PutReplication { bucket, .. } => {
            clients
                .admin_of(bucket)
                .await?
                .put_replication(&desired.role_arn, &desired.rules)
                .await
        }
        Change::Tag { bucket, tags } => clients.admin_of(bucket).await?.put_tags(tags).await,
        Change::ObjectLock { bucket, lock } => {
            clients.admin_of(bucket).await?.lock_objects(lock).await
        }
    }
}
