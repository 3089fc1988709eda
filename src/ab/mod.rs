//! A/B slots, pure: the state record and its crash-safe store, the slot policy, the hand-off
//! file for userspace, the reset button's decision.

pub mod button;
pub mod handoff;
pub mod slots;
pub mod state;
pub mod store;
