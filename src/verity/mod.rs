//! dm-verity, pure: the on-disk format and hash tree, the signed root hash and manifest, image
//! checks.

pub mod hashtree;
pub mod image;
pub mod manifest;
pub mod meta;
pub mod signature;
