//! The decision, pure: from settings and the devices found, the `Plan` the boot executes. The
//! types live in `step` (a leaf); `root` decides a one-image boot, `data` the data partition's
//! part of any boot, `ab` the A/B boot. Callers outside use the names re-exported here.

pub mod ab;
pub mod data;
pub mod kernel;
pub mod root;
pub mod step;

pub use root::{decide, decide_data};
pub use step::*;
