//! The one error type of the crate.
//!
//! Errors that stop a run (bad configuration, a bad event, a manifest that
//! cannot be written) are `Err`; a single file's failure is recorded in the
//! manifest as data and never becomes an `Err` of the run.

use std::path::PathBuf;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or invalid; the message names the variable or flag to fix.
    #[error("configuration: {0}")]
    Config(String),

    /// The invocation payload is not one this function accepts.
    #[error("invalid event: {0}")]
    Event(String),

    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An S3 request failed. `code` is S3's error code when it sent one
    /// (`AccessDenied`, `NoSuchVersion`, `KMS.DisabledException`…), so callers
    /// can tell causes apart; `detail` holds the SDK's full error chain.
    #[error("S3 {operation} s3://{bucket}/{key}: {detail}")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        code: Option<String>,
        /// The HTTP status of S3's answer, when there was one.
        status: Option<u16>,
        /// Why the request failed, when it is not S3's answer.
        cause: Cause,
        /// One line: S3's code and message, or what kept the request from
        /// being sent (the SDK's whole chain is logged at debug level).
        detail: String,
    },

    /// A conditional write or delete lost to another writer. `server_time`
    /// is S3's clock when it refused (its `Date` header), if it said.
    #[error("s3://{bucket}/{key} was changed by another writer")]
    PreconditionFailed {
        bucket: String,
        key: String,
        server_time: Option<chrono::DateTime<chrono::Utc>>,
    },

    /// S3 stored an object with other encryption settings than configured.
    #[error("encryption mismatch on s3://{bucket}/{key}: {detail}")]
    Encryption {
        bucket: String,
        key: String,
        detail: String,
    },

    /// The file changed between hashing and uploading; nothing was stored.
    #[error("{} changed while it was being read: {detail}", path.display())]
    Changed { path: PathBuf, detail: String },

    /// A restore left this file alone: it would leave the directory, something
    /// is in the way, or the download was not the recorded content.
    #[error("{}: {detail}", path.display())]
    Refused { path: PathBuf, detail: String },

    /// A manifest is not what the chain of manifests vouches for.
    #[error("manifest {key} is not trustworthy: {detail}")]
    ChainBroken { key: String, detail: String },

    /// A KMS key that encrypts the snapshot cannot decrypt now: a restore
    /// would fail file by file, so it writes nothing.
    #[error("KMS key {key} cannot decrypt this snapshot: {detail}; nothing was restored")]
    KeyUnusable { key: String, detail: String },

    /// The run's time was up while this file was being uploaded; the upload
    /// was aborted and the next run sends the file again.
    #[error("{} was not finished before the time limit; the next run uploads it", path.display())]
    Stopped { path: PathBuf },

    /// KMS refused or failed a signing-key request; the message names the
    /// permission or setting that fixes it.
    #[error("KMS: {0}")]
    Kms(String),

    /// A manifest that the trusted key did not sign: whoever could write
    /// one object into the prefix could have written it.
    #[error("manifest {key} is not trusted: {detail}")]
    Untrusted { key: String, detail: String },

    /// OpenSSL failed while hashing: the digest cannot be trusted.
    #[error("MD5 failed: {0}")]
    Digest(String),

    /// A shard whose run no longer holds the lock, or a plan that cannot be read.
    #[error("sharded run: {0}")]
    Shard(String),

    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),

    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Why a request got no answer from S3, when it did not: each has its own fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// S3 answered (its code says what).
    Answered,
    /// No credential provider in the chain found credentials.
    NoCredentials,
    /// No region is set, so no endpoint could be resolved.
    NoRegion,
    /// The endpoint could not be reached (refused, no route, DNS).
    Unreachable,
    TimedOut,
    Other,
}

impl Cause {
    fn of<E, R>(err: &SdkError<E, R>) -> Cause {
        use std::error::Error as _;
        match err {
            SdkError::ServiceError(_) => Cause::Answered,
            SdkError::TimeoutError(_) => Cause::TimedOut,
            SdkError::DispatchFailure(failure) if failure.is_io() => Cause::Unreachable,
            SdkError::DispatchFailure(failure) if failure.is_timeout() => Cause::TimedOut,
            SdkError::DispatchFailure(failure) => {
                let mut source = failure.as_connector_error().and_then(|c| c.source());
                while let Some(current) = source {
                    if current
                        .downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
                        .is_some()
                    {
                        return Cause::NoCredentials;
                    }
                    if current.to_string().contains("region must be set") {
                        return Cause::NoRegion;
                    }
                    source = current.source();
                }
                Cause::Other
            }
            _ => Cause::Other,
        }
    }
}

/// The innermost message of an error's chain: what actually went wrong.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

impl Error {
    /// Whether this is a write to a reader that went away (`| head`): a
    /// command ends quietly then, as `ls` and `grep` do.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn s3<E>(
        operation: &'static str,
        bucket: &str,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        tracing::debug!(operation, bucket, key, error = %DisplayErrorContext(&err), "S3 request failed");
        let code = err
            .as_service_error()
            .and_then(|e| e.code())
            .map(str::to_owned);
        let cause = Cause::of(&err);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let detail = match (err.as_service_error(), cause) {
            // A HEAD's refusal has no body: its status is all S3 says.
            (Some(answer), _) => format!(
                "{}: {}",
                answer.code().map_or_else(
                    || format!("HTTP {}", status.unwrap_or_default()),
                    str::to_owned
                ),
                answer.message().unwrap_or("(no message)")
            ),
            (None, Cause::TimedOut) => "the request timed out".to_owned(),
            (None, _) => innermost(&err),
        };
        Error::S3 {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code,
            status,
            cause,
            detail,
        }
    }

    /// A required setting that is not set, with the variable and the flag that set it.
    pub fn missing(what: &str, env: &str, flag: &str) -> Self {
        Error::Config(format!("{what} is not set: set {env} or pass {flag}"))
    }

    /// An S3 answer this tool cannot use, though the request went through.
    pub(crate) fn s3_detail(
        operation: &'static str,
        bucket: &str,
        key: &str,
        detail: impl std::fmt::Display,
    ) -> Self {
        Error::S3 {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code: None,
            status: None,
            cause: Cause::Answered,
            detail: detail.to_string(),
        }
    }

    /// S3's error code, when the error is S3's answer.
    pub fn s3_code(&self) -> Option<&str> {
        match self {
            Error::S3 { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of S3's answer, when the error is S3's answer.
    pub fn s3_status(&self) -> Option<u16> {
        match self {
            Error::S3 { status, .. } => *status,
            _ => None,
        }
    }

    /// A stable name for the error kind, used as Lambda's `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "ConfigError",
            Error::Event(_) => "EventError",
            Error::Io { .. } => "IoError",
            Error::S3 { .. } => "S3Error",
            Error::PreconditionFailed { .. } => "PreconditionFailed",
            Error::Encryption { .. } => "EncryptionMismatch",
            Error::Changed { .. } => "FileChanged",
            Error::Stopped { .. } => "Stopped",
            Error::Refused { .. } => "Refused",
            Error::ChainBroken { .. } => "ChainBroken",
            Error::KeyUnusable { .. } => "KeyUnusable",
            Error::Kms(_) => "KmsError",
            Error::Untrusted { .. } => "Untrusted",
            Error::Shard(_) => "ShardError",
            Error::Digest(_) => "DigestError",
            Error::Manifest(_) => "ManifestError",
            Error::Join(_) => "InternalError",
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().to_owned(),
            error_message: err.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
