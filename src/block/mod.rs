//! Block devices, pure: the device specs settings name, filesystem probing, the sysfs scan.

pub mod device;
pub mod probe;
pub mod spec;
