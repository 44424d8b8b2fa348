//! The tests' certificate authority.
//!
//! It is the throwaway CA of `peerd demo --tls` (examples/peerd/pki.rs), so
//! the demo and every test make their certificates with one builder: node
//! certificates, chosen serials and validity windows, and CRLs.

// Each test binary, like peerd, uses a different part of the builder.
#[allow(dead_code)]
#[path = "../../examples/peerd/pki.rs"]
mod authority;

pub use authority::*;
