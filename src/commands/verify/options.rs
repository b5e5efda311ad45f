//! What `verify` is asked: which manifest, how much data to read back, how
//! far back to follow the chain. The same fields are CLI flags and the
//! fields of a Lambda event.

use std::fmt;
use std::str::FromStr;

use clap::Args;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::Options;
use crate::error::{Error, Result};
use crate::run::Mode;

/// One verify run's request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The snapshot to verify: "latest" (the newest complete, full one;
    /// signed, where a key is trusted), a manifest name as `snapshots`
    /// lists it, or the manifest_s3_uri a run printed.
    #[arg(long, default_value = "latest")]
    #[serde(default)]
    pub manifest: Option<String>,
    /// Download and hash this share of the objects: "all" or a percentage
    /// such as "10%". Each run reads another slice, so repeated runs cover
    /// the whole backup.
    #[arg(long)]
    #[serde(default)]
    pub read_data: Option<ReadShare>,
    /// Which slice --read-data reads (default: the day number, so daily
    /// runs move on by one slice a day).
    #[arg(long)]
    #[serde(default)]
    pub read_data_seed: Option<u64>,
    /// Follow the manifest chain back this many links (default: all).
    #[arg(long)]
    #[serde(default)]
    pub since_chain: Option<u32>,
}

/// The fields a verify request may have, for error messages.
pub const FIELDS: &str = "manifest, read_data, read_data_seed and since_chain";

/// How much data `--read-data` reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadShare {
    All,
    /// A share in basis points (1% = 100), of 10,000.
    BasisPoints(u32),
}

impl FromStr for ReadShare {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(ReadShare::All);
        }
        let percent: f64 = text
            .strip_suffix('%')
            .unwrap_or(text)
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not \"all\" or a percentage such as \"10%\""))?;
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(format!("{text:?} must be above 0% and at most 100%"));
        }
        let basis_points = (percent * 100.0).round().max(1.0) as u32;
        Ok(if basis_points >= 10_000 {
            ReadShare::All
        } else {
            ReadShare::BasisPoints(basis_points)
        })
    }
}

impl fmt::Display for ReadShare {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ReadShare::All => f.write_str("all"),
            ReadShare::BasisPoints(bp) => write!(f, "{}%", f64::from(*bp) / 100.0),
        }
    }
}

impl<'de> Deserialize<'de> for ReadShare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for ReadShare {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The options of `verify`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub request: VerifyRequest,
    /// Objects checked or read at once: HEADs and reads wait on S3's
    /// latency, and a read streams a chunk at a time.
    #[arg(long, env = "SYNC_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
}

/// The validated options of `verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub concurrency: usize,
}

impl Options for VerifyOptions {
    type Args = VerifyArgs;
    type Run = crate::run::NoLockArgs;
    const WRITES: bool = false;

    fn from_args(args: VerifyArgs, _mode: Mode) -> Result<Self> {
        if args.concurrency == 0 {
            return Err(Error::Config(
                "concurrency must be at least 1: set SYNC_CONCURRENCY or pass --concurrency".into(),
            ));
        }
        Ok(VerifyOptions {
            concurrency: args.concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_parse_as_all_or_a_percentage() {
        assert_eq!("all".parse(), Ok(ReadShare::All));
        assert_eq!("100%".parse(), Ok(ReadShare::All));
        assert_eq!("10%".parse(), Ok(ReadShare::BasisPoints(1000)));
        assert_eq!(" 0.5 % ".parse(), Ok(ReadShare::BasisPoints(50)));
        assert_eq!("1".parse(), Ok(ReadShare::BasisPoints(100)));
        for bad in ["0%", "-1%", "150%", "ten", ""] {
            assert!(bad.parse::<ReadShare>().is_err(), "{bad} was accepted");
        }
        assert_eq!(ReadShare::BasisPoints(50).to_string(), "0.5%");
    }
}
