//! The SDK clients, built once per process.

use aws_sdk_s3::Client;

use crate::target::Connection;
use aws_sdk_s3::config::{RequestChecksumCalculation, retry::RetryConfig};

/// Builds the S3 client and the KMS client once per process, from one load
/// of the standard AWS configuration.
///
/// `--endpoint-url`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` select
/// another S3 endpoint, the flag first, as in the aws CLI; with one set,
/// requests use path-style addressing so local emulators and S3-compatible
/// stores work.
pub async fn s3_and_kms_clients(
    max_attempts: u32,
    connection: &Connection,
) -> (Client, aws_sdk_kms::Client) {
    let shared = shared_config(connection).await;
    let retry = RetryConfig::standard().with_max_attempts(max_attempts);
    let kms = kms_client_from(&shared, retry.clone());
    let s3 = match &connection.endpoint_url {
        // Set on the client itself: the SDK lets the environment's
        // AWS_ENDPOINT_URL win over an endpoint set on the shared config.
        Some(url) => Client::from_conf(s3_config(&shared, true, retry).endpoint_url(url).build()),
        None => s3_client_from(&shared, custom_endpoint(), retry),
    };
    (s3, kms)
}

/// The standard AWS configuration (environment, shared files, instance
/// metadata), with the profile and the region `connection` names.
pub async fn shared_config(connection: &Connection) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = &connection.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &connection.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    loader.load().await
}

/// The KMS client for a shared configuration (`AWS_ENDPOINT_URL_KMS` or
/// `AWS_ENDPOINT_URL` select another endpoint).
pub fn kms_client_from(shared: &aws_config::SdkConfig, retry: RetryConfig) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::from(shared)
        .retry_config(retry)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Whether the environment names another S3 endpoint (an emulator), which
/// then gets path-style requests.
pub fn custom_endpoint() -> bool {
    endpoint_url().is_some()
}

/// The S3 endpoint the environment names, if any.
pub fn endpoint_url() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.is_empty())
}

/// A client in `region`, otherwise as [`s3_client_from`] builds it: bucket
/// settings must be read and written in the bucket's region.
pub fn s3_client_in(shared: &aws_config::SdkConfig, region: &str, path_style: bool) -> Client {
    let shared = shared
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    s3_client_from(&shared, path_style, RetryConfig::standard())
}

/// The S3 client for a given shared configuration. Retries use the SDK's
/// standard mode: exponential backoff with jitter on throttling, 5xx and
/// connection errors. Bodies are in memory, so a retry never re-reads a file.
pub fn s3_client_from(
    shared: &aws_config::SdkConfig,
    path_style: bool,
    retry: RetryConfig,
) -> Client {
    Client::from_conf(s3_config(shared, path_style, retry).build())
}

fn s3_config(
    shared: &aws_config::SdkConfig,
    path_style: bool,
    retry: RetryConfig,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(path_style)
        .retry_config(retry)
        // Every upload already carries a Content-MD5 computed here.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
}
