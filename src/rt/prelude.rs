//! What std's prelude gives and `core`'s does not: `use crate::rt::prelude::*;` in each file
//! that needs it, with std or without.

pub use alloc::{
    borrow::ToOwned,
    boxed::Box,
    string::{String, ToString},
    vec::Vec,
};
