//! What `audit` is asked (where to look, what to fix: CLI flags and the
//! fields of a Lambda event) and how it is configured (the Batch Operations
//! role, the report prefix, concurrency: flags and environment).

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, ValueEnum};
use serde::Deserialize;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::run::Mode;

/// What `audit` does with what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fix {
    /// Report only.
    #[default]
    None,
    /// Re-encrypt each finding in place by a conditional server-side copy.
    Copy,
    /// Write an S3 Batch Operations CSV manifest of the findings.
    BatchManifest,
    /// Write the manifest and create the Batch Operations copy job.
    Batch,
}

/// One audit's request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRequest {
    /// Read this S3 Inventory report (the s3:// URI of its manifest.json)
    /// instead of listing the prefix.
    #[arg(long)]
    #[serde(default)]
    pub inventory: Option<String>,
    #[arg(long, value_enum, default_value_t = Fix::None)]
    #[serde(default)]
    pub fix: Fix,
    /// Create the Batch Operations job waiting for a confirmation in the
    /// console, instead of running it at once.
    #[arg(long)]
    #[serde(default)]
    pub confirm_job: bool,
}

/// The fields an audit request may have, for error messages.
pub const FIELDS: &str = "inventory, fix and confirm_job";

/// The options of `audit`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub request: AuditRequest,
    /// The role S3 Batch Operations assumes for `--fix batch` (it must trust
    /// batchoperations.s3.amazonaws.com).
    #[arg(long, env = "SYNC_BATCH_ROLE_ARN")]
    pub batch_role_arn: Option<String>,
    /// Where a Batch Operations job writes its completion report (default:
    /// `<prefix>/_audit/reports`, in the backup bucket).
    #[arg(long, env = "SYNC_AUDIT_REPORT_PREFIX")]
    pub report_prefix: Option<String>,
    /// HEADs and copies in flight at once.
    #[arg(long, env = "SYNC_AUDIT_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Trust an inventory's "SSE-KMS, Bucket Key enabled" without a HEAD per
    /// object to read the key: an inventory does not name the KMS key, so a
    /// wrong key then goes unseen.
    #[arg(long, env = "SYNC_AUDIT_SKIP_KEY_CHECK", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub skip_key_check: bool,
}

/// The validated options of `audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    pub batch_role_arn: Option<String>,
    pub report_prefix: Option<String>,
    pub concurrency: usize,
    pub skip_key_check: bool,
    /// The S3 Control client for `--fix batch`; built from the environment
    /// when not given.
    pub control: Option<aws_sdk_s3control::Client>,
}

impl Options for AuditOptions {
    type Args = AuditArgs;
    type Run = crate::run::NoLockArgs;

    fn from_args(args: AuditArgs, _mode: Mode) -> Result<Self> {
        if args.concurrency == 0 {
            return Err(Error::Config(
                "concurrency must be at least 1: set SYNC_AUDIT_CONCURRENCY or pass --concurrency"
                    .into(),
            ));
        }
        let options = AuditOptions {
            batch_role_arn: args.batch_role_arn.filter(|r| !r.trim().is_empty()),
            report_prefix: args.report_prefix.filter(|p| !p.trim().is_empty()),
            concurrency: args.concurrency,
            skip_key_check: args.skip_key_check,
            control: None,
        };
        options.check(&args.request)?;
        Ok(options)
    }
}

impl AuditOptions {
    /// Fails fast when a request cannot be carried out with these options.
    pub fn check(&self, request: &AuditRequest) -> Result<()> {
        if request.fix == Fix::Batch {
            let role = self.batch_role_arn.as_deref().ok_or_else(|| {
                Error::missing(
                    "the Batch Operations role for --fix batch",
                    "SYNC_BATCH_ROLE_ARN",
                    "--batch-role-arn",
                )
            })?;
            account_of(role)?;
        }
        if let Some(uri) = &request.inventory {
            crate::store::keys::parse_s3_uri(uri)
                .map_err(|detail| Error::Config(format!("--inventory {uri:?}: {detail}")))?;
        }
        Ok(())
    }
}

/// The account of an IAM role ARN (`arn:aws:iam::<account>:role/<name>`):
/// the account a Batch Operations job is created in.
pub fn account_of(role_arn: &str) -> Result<&str> {
    let mut parts = role_arn.split(':');
    let account = match (parts.next(), parts.nth(3), parts.next()) {
        (Some("arn"), Some(account), Some(resource))
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.starts_with("role/") =>
        {
            account
        }
        _ => {
            return Err(Error::Config(format!(
                "{role_arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>): set SYNC_BATCH_ROLE_ARN or pass --batch-role-arn"
            )));
        }
    };
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_needs_a_role_arn_that_names_its_account() {
        let request = AuditRequest {
            fix: Fix::Batch,
            ..AuditRequest::default()
        };
        let none = AuditOptions::default();
        assert!(
            none.check(&request)
                .unwrap_err()
                .to_string()
                .contains("SYNC_BATCH_ROLE_ARN")
        );
        assert_eq!(
            account_of("arn:aws:iam::111122223333:role/s3-batch").unwrap(),
            "111122223333"
        );
        for bad in [
            "role/x",
            "arn:aws:iam::1111:role/x",
            "arn:aws:iam::111122223333:user/x",
        ] {
            assert!(account_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_name_the_fix_in_kebab_case() {
        let request: AuditRequest =
            serde_json::from_value(serde_json::json!({"fix": "batch-manifest"})).unwrap();
        assert_eq!(request.fix, Fix::BatchManifest);
        assert!(
            serde_json::from_value::<AuditRequest>(serde_json::json!({"fixx": "copy"})).is_err()
        );
    }
}
