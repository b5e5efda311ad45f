//! What a command is configured with: the target, the run options and its
//! own options, from environment variables and CLI flags (one definition
//! serves both), validated before any request is made.

use std::path::{Path, PathBuf};

use clap::{Args, FromArgMatches, Parser};

use crate::error::{Error, Result};
use crate::run::{Mode, RunArgs, RunOptions, RunSettings};
use crate::store::multipart::MIB;
use crate::store::{Store, s3_and_kms_clients};
use crate::target::{Target, TargetArgs};
use crate::trust::Trust;

/// A command's settings as given: the shared ones flattened beside its own.
/// `R` is [`RunArgs`] for a command that takes the prefix's lock,
/// [`crate::run::NoLockArgs`] for one that does not.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs<A: Args, R: RunSettings = RunArgs> {
    // The command's own flags first: the shared ones follow under headings.
    #[command(flatten)]
    pub command: A,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: R,
}

impl<A: Args + FromArgMatches, R: RunSettings> ConfigArgs<A, R> {
    /// The settings from the environment alone, as under Lambda.
    pub fn from_env() -> Result<Self> {
        args_from_env()
    }
}

/// Arguments read from the environment alone (their `env` variables and
/// defaults), as under Lambda.
pub fn args_from_env<A: Args + FromArgMatches>() -> Result<A> {
    #[derive(Parser)]
    struct EnvOnly<A: Args + FromArgMatches> {
        #[command(flatten)]
        args: A,
    }
    EnvOnly::<A>::try_parse_from(["s3-kms-sync"])
        .map(|parsed| parsed.args)
        .map_err(|err| Error::Config(err.to_string()))
}

/// A command's options, validated from its arguments.
pub trait Options: Sized {
    type Args: Args + FromArgMatches;
    /// [`RunArgs`] for a command that locks, [`crate::run::NoLockArgs`] otherwise.
    type Run: RunSettings;
    /// Whether the command writes objects, and so needs the KMS key id;
    /// a reader needs none, since each object names its key.
    const WRITES: bool = true;

    fn from_args(args: Self::Args, mode: Mode) -> Result<Self>;
}

/// A command's validated settings.
#[derive(Debug, Clone)]
pub struct Config<O> {
    pub target: Target,
    pub run: RunOptions,
    pub command: O,
}

impl<O: Options> Config<O> {
    pub fn from_args(args: ConfigArgs<O::Args, O::Run>, mode: Mode) -> Result<Self> {
        Ok(Config {
            target: Target::from_args(args.target, O::WRITES)?,
            run: RunOptions::from_args(args.run.into_run_args(), mode)?,
            command: O::from_args(args.command, mode)?,
        })
    }
}

impl<O> Config<O> {
    /// The store of the target, over `client`.
    pub fn store(&self, client: aws_sdk_s3::Client) -> Store {
        Store::new(client, &self.target.bucket, &self.target.kms_key_id)
    }

    /// The store of the target, over the client the standard AWS configuration gives.
    pub async fn connect(&self) -> Store {
        let target = &self.target;
        let (s3, kms) = s3_and_kms_clients(target.max_attempts, &target.connection).await;
        let trust = Trust::new(&kms, target.signing_key_id.as_deref(), target.pinned_key());
        self.store(s3)
            .with_kms(kms)
            .with_trust(trust)
            .with_endpoint(target.connection.endpoint_url.clone())
    }
}

/// Parses a byte count: `1048576`, `512KiB`, `8MiB`, `1GiB` (also KB/MB/GB as binary units).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 8MiB or 1048576"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => 1024 * MIB,
        _ => return Err(format!("{text:?} has an unknown unit; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `dir`, resolved, if it is an existing directory; else an error naming
/// the setting that gives it.
pub fn existing_dir(what: &str, dir: &Path, env: &str, flag: &str) -> Result<PathBuf> {
    let resolved = dir.canonicalize().map_err(|err| {
        Error::Config(format!(
            "{what} {} cannot be opened ({err}): set {env} or pass {flag}",
            dir.display()
        ))
    })?;
    if !resolved.is_dir() {
        return Err(Error::Config(format!(
            "{what} {} is not a directory: set {env} or pass {flag}",
            dir.display()
        )));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(MIB));
        assert_eq!(parse_size("8MiB"), Ok(8 * MIB));
        assert_eq!(parse_size("512 KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1gb"), Ok(1024 * MIB));
        assert!(parse_size("8 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
