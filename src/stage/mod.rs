//! The acting half of each boot stage, in boot order. Decisions live in `plan`, `modules` and
//! `settings`; these files only perform them.

pub mod carry;
pub mod devices;
pub mod early;
pub mod modules;
pub mod mounts;
pub mod recreate;
pub mod slot;
pub mod switch;
pub mod upper;
pub mod verity;
