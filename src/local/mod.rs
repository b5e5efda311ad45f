//! The local side: the source directory held open, its walk and filters,
//! file stamps and hashing. Nothing here talks to S3.

pub mod attributes;
pub mod filter;
pub mod flush;
mod found;
pub mod hash;
pub mod page_cache;
pub mod range;
pub mod restore_dir;
pub mod room;
pub mod source;
pub mod stamp;
pub mod walk;
