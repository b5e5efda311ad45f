//! What every command acts on: the bucket, the key prefix and the KMS key,
//! and how requests reach them.

use clap::Args;

use crate::error::{Error, Result};
use crate::store::keys;

/// The target, exactly as given in the environment or on the command line.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// Destination bucket.
    #[arg(long, env = "SYNC_BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix under which files are stored.
    #[arg(long, env = "SYNC_PREFIX", default_value = "")]
    pub prefix: String,
    /// KMS key ARN, key id or alias used for SSE-KMS.
    #[arg(long, env = "SYNC_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Attempts per S3 request (the SDK's standard retry with backoff and jitter).
    #[arg(long, env = "SYNC_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
}

/// The validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    /// Normalized: no leading or trailing '/'.
    pub prefix: String,
    pub kms_key_id: String,
    pub max_attempts: u32,
}

impl Target {
    pub fn from_args(args: TargetArgs) -> Result<Self> {
        let bucket = non_empty(args.bucket)
            .ok_or_else(|| Error::missing("the destination bucket", "SYNC_BUCKET", "--bucket"))?;
        let kms_key_id = non_empty(args.kms_key_id)
            .ok_or_else(|| Error::missing("the KMS key", "SYNC_KMS_KEY_ID", "--kms-key-id"))?;
        if args.max_attempts == 0 {
            return Err(Error::Config(
                "max attempts must be at least 1: set SYNC_MAX_ATTEMPTS or pass --max-attempts"
                    .into(),
            ));
        }
        Ok(Target {
            bucket,
            prefix: keys::normalize_prefix(&args.prefix),
            kms_key_id,
            max_attempts: args.max_attempts,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TargetArgs {
        TargetArgs {
            bucket: Some("b".into()),
            kms_key_id: Some("k".into()),
            prefix: "/a/b/".into(),
            max_attempts: 3,
        }
    }

    fn config_error(result: Result<Target>) -> String {
        match result {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn missing_settings_name_their_fix() {
        let mut a = args();
        a.bucket = None;
        assert!(config_error(Target::from_args(a)).contains("SYNC_BUCKET"));
        let mut a = args();
        a.kms_key_id = Some("  ".into());
        assert!(config_error(Target::from_args(a)).contains("--kms-key-id"));
        let mut a = args();
        a.max_attempts = 0;
        assert!(config_error(Target::from_args(a)).contains("SYNC_MAX_ATTEMPTS"));
        assert_eq!(Target::from_args(args()).unwrap().prefix, "a/b");
    }
}
