//! Address text: `ScopedIp` and `Endpoint` `FromStr` on arbitrary text
//! (the input as UTF-8, invalid sequences replaced).
//!
//! Whatever parses must display as text that parses back to an equal value
//! and displays the same again. That holds too for an endpoint built with
//! `Endpoint::new` from any `ScopedIp` that parsed.
#![no_main]

use std::fmt::Display;
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use peerwire::{AddrParseError, Endpoint, Family, ScopedIp};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    match text.parse::<ScopedIp>() {
        Ok(ip) => {
            round_trip(&ip);
            if ip.scope().is_some() {
                assert_eq!(ip.family(), Family::V6, "a scope on {ip:?}");
            }
            // Any port: here one derived from the input.
            let port = data
                .iter()
                .fold(24007u16, |p, &b| p.rotate_left(3) ^ u16::from(b));
            round_trip(&Endpoint::new(ip, port));
        }
        Err(error) => check_error(&error),
    }

    match text.parse::<Endpoint>() {
        Ok(endpoint) => round_trip(&endpoint),
        Err(error) => check_error(&error),
    }

    if let Ok(endpoint) = Endpoint::parse_with_default_port(&text, 24007) {
        round_trip(&endpoint);
    }
});

/// Display, parse, compare; display again, compare the text.
fn round_trip<T>(value: &T)
where
    T: Display + FromStr<Err = AddrParseError> + PartialEq + std::fmt::Debug,
{
    let shown = value.to_string();
    let again: T = shown
        .parse()
        .unwrap_or_else(|e| panic!("{value:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(&again, value, "{shown:?} parses to another value");
    assert_eq!(again.to_string(), shown);
}

fn check_error(error: &AddrParseError) {
    assert!(
        error.input().chars().count() <= 128,
        "unbounded error input"
    );
    let _ = error.to_string();
}
