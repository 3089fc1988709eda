//! Low-level file helpers: opens and removals that never follow symlinks or cross devices,
//! and the tree copy.

pub mod careful;
pub mod copy;
pub mod mkdir;
