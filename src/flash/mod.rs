//! Raw flash, pure: `mtdparts=` tables and the UBI attach decision.

pub mod mtdparts;
pub mod ubi;
