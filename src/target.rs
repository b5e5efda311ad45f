//! What every command acts on: the bucket, the key prefix and the KMS key,
//! and how requests reach them.

use clap::Args;

use crate::error::{Error, Result};
use crate::store::keys;
use crate::trust::PublicKey;

/// The target, exactly as given in the environment or on the command line.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Target")]
pub struct TargetArgs {
    /// The bucket the backups are kept in [required].
    #[arg(long, env = "SYNC_BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix under which files are stored [default: none, the
    /// bucket's root].
    #[arg(long, env = "SYNC_PREFIX")]
    pub prefix: Option<String>,
    /// KMS key ARN, key id or alias that every object written is encrypted
    /// with (SSE-KMS) [required by commands that write; readers need none:
    /// each object names its key].
    #[arg(long, env = "SYNC_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Attempts per S3 request (the SDK's standard retry with backoff and jitter).
    #[arg(long, env = "SYNC_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Asymmetric KMS key (ECC_NIST_P256, SIGN_VERIFY) that signs each
    /// manifest this process writes; without it manifests are unsigned.
    /// Also the key trusted when no public key is pinned.
    #[arg(long, env = "SYNC_SIGNING_KEY_ID")]
    pub signing_key_id: Option<String>,
    /// The public key that snapshots must be signed by: a PEM file, or the
    /// PEM itself. verify and restore then check every manifest offline.
    #[arg(long, env = "SYNC_TRUSTED_PUBLIC_KEY")]
    pub trusted_public_key: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

/// How requests reach AWS, where the standard configuration (environment,
/// shared files) is not to be used as it is: the aws CLI's flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[command(next_help_heading = "AWS connection")]
pub struct Connection {
    /// The named profile of ~/.aws/config and ~/.aws/credentials to use
    /// (default: AWS_PROFILE, else "default").
    #[arg(long)]
    pub profile: Option<String>,
    /// The AWS region (default: AWS_REGION, else the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Send S3 requests to this URL (an S3-compatible store or an
    /// emulator), path-style; KMS keeps its own endpoint (default:
    /// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL).
    #[arg(long)]
    pub endpoint_url: Option<String>,
}

/// The validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    /// Normalized: no leading or trailing '/'.
    pub prefix: String,
    /// Whether the prefix was given (an empty one by name, `--prefix ''`),
    /// not left to its default: only then may a prune sweep the bucket.
    pub prefix_given: bool,
    /// Empty for a command that only reads.
    pub kms_key_id: String,
    pub max_attempts: u32,
    pub signing_key_id: Option<String>,
    /// The pinned public key, as PEM (checked to be a P-256 key).
    pub trusted_public_key: Option<String>,
    pub connection: Connection,
}

impl Target {
    /// The validated target; the KMS key is required only where the
    /// command `writes`.
    pub fn from_args(args: TargetArgs, writes: bool) -> Result<Self> {
        let bucket = non_empty(args.bucket)
            .ok_or_else(|| Error::missing("the bucket", "SYNC_BUCKET", "--bucket"))?;
        let kms_key_id = match non_empty(args.kms_key_id) {
            Some(key) => key,
            None if !writes => String::new(),
            None => {
                return Err(Error::missing(
                    "the KMS key",
                    "SYNC_KMS_KEY_ID",
                    "--kms-key-id",
                ));
            }
        };
        let connection = Connection {
            profile: non_empty(args.connection.profile),
            region: non_empty(args.connection.region),
            endpoint_url: non_empty(args.connection.endpoint_url),
        };
        if args.max_attempts == 0 {
            return Err(Error::Config(
                "max attempts must be at least 1: set SYNC_MAX_ATTEMPTS or pass --max-attempts"
                    .into(),
            ));
        }
        let trusted_public_key = non_empty(args.trusted_public_key)
            .map(|given| pinned_pem(&given))
            .transpose()?;
        Ok(Target {
            bucket,
            prefix: keys::normalize_prefix(args.prefix.as_deref().unwrap_or_default()),
            prefix_given: args.prefix.is_some(),
            kms_key_id,
            max_attempts: args.max_attempts,
            signing_key_id: non_empty(args.signing_key_id),
            trusted_public_key,
            connection,
        })
    }

    /// The pinned public key, parsed.
    pub fn pinned_key(&self) -> Option<PublicKey> {
        let pem = self.trusted_public_key.as_deref()?;
        PublicKey::from_pem(pem.as_bytes()).ok()
    }
}

/// The PEM `given` holds, or the file it names holds, once it is known to
/// be a P-256 public key.
fn pinned_pem(given: &str) -> Result<String> {
    let fix = "set SYNC_TRUSTED_PUBLIC_KEY or pass --trusted-public-key (a PEM file, as `aws kms get-public-key` gives the template's SigningKey)";
    let pem = if given.starts_with("-----BEGIN") {
        given.to_owned()
    } else {
        std::fs::read_to_string(given).map_err(|err| {
            Error::Config(format!(
                "cannot read the trusted public key {given} ({err}): {fix}"
            ))
        })?
    };
    PublicKey::from_pem(pem.as_bytes())
        .map_err(|why| Error::Config(format!("the trusted public key {given} is {why}: {fix}")))?;
    Ok(pem)
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
            prefix: Some("/a/b/".into()),
            max_attempts: 3,
            ..TargetArgs::default()
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
        assert!(config_error(Target::from_args(a, true)).contains("SYNC_BUCKET"));
        let mut a = args();
        a.kms_key_id = Some("  ".into());
        assert!(config_error(Target::from_args(a.clone(), true)).contains("--kms-key-id"));
        assert_eq!(Target::from_args(a, false).unwrap().kms_key_id, "");
        let mut a = args();
        a.max_attempts = 0;
        assert!(config_error(Target::from_args(a, true)).contains("SYNC_MAX_ATTEMPTS"));
        assert_eq!(Target::from_args(args(), true).unwrap().prefix, "a/b");
        let mut a = args();
        a.trusted_public_key = Some("/nonexistent/key.pem".into());
        assert!(config_error(Target::from_args(a, true)).contains("--trusted-public-key"));
        let mut a = args();
        a.trusted_public_key =
            Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into());
        assert!(config_error(Target::from_args(a, true)).contains("SYNC_TRUSTED_PUBLIC_KEY"));
    }
}
