//! RestoreObject: thawing an archived version so GetObject can read it.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};

use super::Store;
use crate::error::{Error, Result};

/// What S3 said to a request to thaw an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thaw {
    /// A restore was started (202), or the object is already thawed (200).
    Requested,
    /// A restore of this object is already running (409 `RestoreAlreadyInProgress`).
    AlreadyThawing,
}

impl Store {
    /// Asks S3 to make `version` of `key` readable, at `tier` (`Standard`,
    /// `Bulk` or `Expedited`): for `days` as a temporary copy, or with no
    /// days for an Intelligent-Tiering archive tier, which S3 moves back to
    /// its frequent tier instead (and refuses a `Days` for).
    pub async fn thaw(
        &self,
        key: &str,
        version: &str,
        days: Option<i32>,
        tier: &str,
    ) -> Result<Thaw> {
        self.count("RestoreObject");
        let request = RestoreRequest::builder()
            .set_days(days)
            .glacier_job_parameters(
                GlacierJobParameters::builder()
                    .tier(Tier::from(tier))
                    .build()
                    .map_err(|err| Error::Config(format!("restore tier {tier}: {err}")))?,
            )
            .build();
        let answer = self
            .client
            .restore_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version)
            .restore_request(request)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(Thaw::Requested),
            Err(err) if err.code() == Some("RestoreAlreadyInProgress") => Ok(Thaw::AlreadyThawing),
            Err(err) => Err(Error::s3("RestoreObject", &self.bucket, key, err)),
        }
    }
}
