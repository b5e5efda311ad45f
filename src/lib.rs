//! Back a directory up to S3 under mandatory SSE-KMS.
//!
//! Data flows one way: [`config`] → [`walk`] → [`plan`] → [`transfer`] →
//! [`manifest`] → [`manifest::Summary`]. Only [`remote`] talks to S3.

pub mod cli;
pub mod config;
pub mod error;
pub mod filter;
pub mod handler;
pub mod hash;
pub mod keys;
pub mod lease;
pub mod manifest;
pub mod manifest_dir;
pub mod metrics;
pub mod plan;
pub mod remote;
pub mod request;
pub mod source;
pub mod state;
pub mod sync;
pub mod transfer;
pub mod walk;

pub use error::{Error, Result};
pub use sync::Engine;
