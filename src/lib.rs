//! Back a directory up to S3 under mandatory SSE-KMS.
//!
//! Commands are functions over shared parts; imports point one way, from
//! the front ends ([`cli`], [`lambda`]) to [`commands`] to the shared parts
//! ([`run`], [`manifest`], [`store`], [`local`], [`trust`]). Only [`store`]
//! talks to S3; only [`store`] and [`trust`] talk to KMS.
//!
//! `sync`'s data flows one way: [`config`] → [`local::walk`] (streamed, from
//! several threads) and the prior state (last manifest, listing joined into it) →
//! per-file decision and transfer → [`manifest::spool`] (records on disk,
//! merged back in order) → [`manifest::publish`] (signed by [`trust`]) →
//! [`manifest::Summary`]. `verify` and `restore` read a manifest located by
//! [`manifest::locate`] through the one streamed reader, trust it as far as
//! [`manifest::trusted`] allows (the trusted key's signature, or else the
//! [`manifest::chain`]), then check or fetch its objects through [`store`]. `audit` judges each object's
//! encryption (from a listing and HEADs, or an S3 Inventory report) against
//! the configured key, and fixes what it finds by the same conditional
//! server-side copy that `sync` uses on an unchanged object.
//!
//! Each name means one thing:
//! - what S3 says of a key: [`store::Object`] (a HEAD), [`store::Listed`]
//!   (a listing), [`store::Stored`] (a write), [`store::Fetched`] (a GET,
//!   still streaming);
//! - how an object's encryption falls short: a [`store::Finding`]
//!   (`not_kms`, `wrong_key`, `no_bucket_key`, `sse_c`); a file `sync` fixed
//!   that way is `reencrypted`, never uploaded again;
//! - what `sync` knows before it reads a file: `Recorded` (the last
//!   manifest's record of a key, with what this run's listing showed of it,
//!   `Seen`), `Index` (those records by key), `Listing` (the listed objects
//!   the index has no record of; a `Presence` per key), `Prior` (both, for
//!   one key), `PriorState` (both, for the run);
//! - a sharded run ([`run::shard`]): a `Plan` (the lock, the index, the
//!   chain link) and its `Shard`s, each a `PathRange` of the tree; `plan`,
//!   a sync per shard, and `merge` are the steps;
//! - configuration: `*Args` as given (environment or flags),
//!   [`target::Target`], [`run::RunOptions`] and each command's options once
//!   validated, [`config::Config`] the three together; a request
//!   ([`commands::sync::SyncRequest`]) is what one invocation asks, and a
//!   [`commands::sync::Scope`] is the options narrowed by it.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod lambda;
pub mod local;
pub mod manifest;
pub mod retention;
pub mod run;
pub mod store;
pub mod target;
pub mod trust;
pub mod units;

pub use error::{Error, Result};
