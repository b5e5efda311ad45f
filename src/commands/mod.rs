//! The commands, each a function over the store, the run options and its
//! own options. Commands use the shared parts; nothing shared uses a command.

pub mod audit;
pub mod diff;
pub mod find;
pub mod forget;
pub mod listing;
pub mod ls;
pub mod replication;
pub mod restore;
pub mod snapshots;
pub mod sync;
pub mod unlock;
pub mod verify;
