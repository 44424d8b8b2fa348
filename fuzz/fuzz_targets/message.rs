//! RPC messages: arbitrary bytes as one record's payload.
//!
//! When `Message::decode` accepts the bytes, the message must re-encode to
//! `encoded_len()` bytes, equal to the input but for zeroed XDR padding in
//! the auth bodies, and decode again to an equal message; its credential and
//! verifiers must survive `Credential::parse` / `to_opaque_auth` round trips
//! (see `peerwire_fuzz::check_message`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerwire::proto::Message;
use peerwire_fuzz::check_message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(Bytes::copy_from_slice(data)) {
        check_message(data, &message);
    }
});
