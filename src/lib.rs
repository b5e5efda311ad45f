//! Back a directory up to S3 under mandatory SSE-KMS.
//!
//! Commands are functions over shared parts; imports point one way, from
//! the front ends ([`cli`], [`lambda`]) to [`commands`] to the shared parts
//! ([`run`], [`manifest`], [`store`], [`local`]). Only [`store`] talks to S3.
//!
//! `sync`'s data flows one way: [`config`] → [`local::walk`] and the prior
//! state (listing + last manifest) → per-file decision and transfer →
//! [`manifest::publish`] → [`manifest::Summary`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod lambda;
pub mod local;
pub mod manifest;
pub mod run;
pub mod store;
pub mod target;

pub use error::{Error, Result};
