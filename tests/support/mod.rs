//! Helpers shared by the integration tests.
//!
//! Each test binary that needs them says `mod support;`. Not every binary uses
//! every helper, so unused ones must not warn.
#![allow(dead_code)]

pub mod netns;
pub mod peerd;
