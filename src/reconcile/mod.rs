//! Reconciling a user's changes with a new image: the rules and the tree walk.

pub mod rules;
pub mod walk;
