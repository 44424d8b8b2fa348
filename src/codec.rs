//! A tokio-util codec for RPC messages over record marking.
//!
//! [`RpcCodec`] joins [`RecordDecoder`] and [`Message`]: use it with
//! `tokio_util::codec::Framed` on a TCP stream.
//!
//! Its items are `Result<Message, DecodeError>`, with two levels of error:
//! - the stream's error ([`CodecError`]) is fatal: an I/O error, or record
//!   marking out of sync or over a limit; the connection must close;
//! - an item's error is one malformed message inside an intact record: the
//!   stream stays in sync, and the connection may go on.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::proto::xdr::XdrWriter;
use crate::proto::{
    CallHeader, DecodeError, MAX_FRAGMENT_LEN, Message, RecordDecoder, RecordEncoder, RecordLimits,
    record_header,
};

/// A fatal codec error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading or writing the stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The record marking is broken or over a limit.
    #[error("bad record: {0}")]
    Record(DecodeError),
    /// A message is longer than a record may be.
    #[error("message of {len} bytes exceeds the record limit of {max}")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Decodes and encodes RPC messages, one per record.
#[derive(Debug)]
pub struct RpcCodec {
    records: RecordDecoder,
    encoder: RecordEncoder,
}

impl Default for RpcCodec {
    fn default() -> RpcCodec {
        RpcCodec::new(RecordLimits::default(), RecordEncoder::default())
    }
}

impl RpcCodec {
    /// A codec with these limits for incoming records and this fragment
    /// policy for outgoing ones.
    pub fn new(limits: RecordLimits, encoder: RecordEncoder) -> RpcCodec {
        RpcCodec {
            records: RecordDecoder::new(limits),
            encoder,
        }
    }
}

impl Decoder for RpcCodec {
    type Item = Result<Message, DecodeError>;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        let record = self.records.decode(src).map_err(CodecError::Record)?;
        Ok(record.map(Message::decode))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        let record = self.records.decode_eof(src).map_err(CodecError::Record)?;
        Ok(record.map(Message::decode))
    }
}

impl Encoder<&Message> for RpcCodec {
    type Error = CodecError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = message.encoded_len();
        let max = self.records.limits().max_record();
        if len > max {
            // Our own limit applies to what we send too: a peer configured
            // like us would refuse it.
            return Err(CodecError::TooLong { len, max });
        }
        if len <= self.encoder.fragment_size() as usize {
            // One fragment: write the message straight after its header.
            dst.reserve(4 + len);
            debug_assert!(len <= MAX_FRAGMENT_LEN as usize);
            dst.put_slice(&record_header(len as u32, true));
            message.encode(dst);
        } else {
            let mut body = BytesMut::with_capacity(len);
            message.encode(&mut body);
            self.encoder.encode(&body, dst);
        }
        Ok(())
    }
}

impl Encoder<Message> for RpcCodec {
    type Error = CodecError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encoder::<&Message>::encode(self, &message, dst)
    }
}

/// Appends `message` to `dst` as a record of one fragment (of several when
/// it is over 2^31-1 bytes, as [`RecordEncoder::default`] writes it),
/// encoding it in place rather than through a buffer of its own.
pub(crate) fn encode_record(message: &Message, dst: &mut BytesMut) {
    let len = message.encoded_len();
    if len <= MAX_FRAGMENT_LEN as usize
        && let Some((words, n)) = message.fixed_header()
    {
        return put_fixed_record(&words[..n], message.payload(), dst);
    }
    if len <= MAX_FRAGMENT_LEN as usize {
        dst.reserve(4 + len);
        dst.extend_from_slice(&record_header(len as u32, true));
        message.encode(dst);
    } else {
        let mut body = BytesMut::with_capacity(len);
        message.encode(&mut body);
        RecordEncoder::default().encode(&body, dst);
    }
}

/// Appends a call as one record, straight from its parts (no `Message` is
/// built): the client's hot path. Equal to [`encode_record`] of the same
/// call.
pub(crate) fn encode_call_record(xid: u32, header: &CallHeader, args: &[u8], dst: &mut BytesMut) {
    let len = 40 + args.len();
    let words = header.fixed_words(xid);
    let (Some(words), true) = (words, len <= MAX_FRAGMENT_LEN as usize) else {
        let message = Message::call(xid, header.clone(), Bytes::copy_from_slice(args));
        return encode_record(&message, dst);
    };
    put_fixed_record(&words, args, dst);
}

/// Appends a call as one record whose arguments `args` writes straight
/// into `dst` (no buffer of their own): the typed client's hot path. The
/// XID is asked of `xid` only once the arguments are written, so that
/// nothing else changes if writing them panics; `dst` is then left as it
/// was (never with part of a record). Equal to [`encode_record`] of the
/// same call.
pub(crate) fn encode_call_record_with(
    header: &CallHeader,
    args: impl FnOnce(&mut BytesMut),
    xid: impl FnOnce() -> u32,
    dst: &mut BytesMut,
) {
    /// Cuts `dst` back to where the record started, unless disarmed.
    struct Rewind<'a> {
        dst: &'a mut BytesMut,
        start: Option<usize>,
    }
    impl Drop for Rewind<'_> {
        fn drop(&mut self) {
            if let Some(start) = self.start {
                self.dst.truncate(start);
            }
        }
    }

    let start = dst.len();
    let mut guard = Rewind {
        dst,
        start: Some(start),
    };
    let dst = &mut *guard.dst;
    // Record mark and XID are patched in below.
    match header.fixed_words(0) {
        // No auth bodies (nearly every call): the header in one copy.
        Some(words) => put_head([0; 4], &words, dst),
        None => {
            dst.put_slice(&[0; 8]);
            header.encode_after_xid(&mut XdrWriter::new(dst));
        }
    }
    args(dst);
    let xid = xid();
    dst[start + 4..start + 8].copy_from_slice(&xid.to_be_bytes());
    let len = dst.len() - start - 4;
    if len <= MAX_FRAGMENT_LEN as usize {
        dst[start..start + 4].copy_from_slice(&record_header(len as u32, true));
    } else {
        // Over 2^31-1 bytes: split into fragments, as encode_record does.
        let body = dst.split_off(start + 4);
        dst.truncate(start);
        RecordEncoder::default().encode(&body, dst);
    }
    guard.start = None;
}

/// Appends one single-fragment record of header `words` (at most ten) and
/// `payload`: the common case, with record mark and header in one copy and
/// the payload in another. The caller has checked the length fits one
/// fragment.
fn put_fixed_record(words: &[u32], payload: &[u8], dst: &mut BytesMut) {
    let len = 4 * words.len() + payload.len();
    dst.reserve(4 + len);
    put_head(record_header(len as u32, true), words, dst);
    dst.extend_from_slice(payload);
}

/// Appends a record mark and header `words` (at most ten) in one copy.
fn put_head(mark: [u8; 4], words: &[u32], dst: &mut BytesMut) {
    let mut head = [0u8; 4 + 4 * 10];
    head[..4].copy_from_slice(&mark);
    for (i, word) in words.iter().enumerate() {
        head[4 + 4 * i..8 + 4 * i].copy_from_slice(&word.to_be_bytes());
    }
    dst.extend_from_slice(&head[..4 + 4 * words.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AcceptStatus, AuthStat, MessageBody, OpaqueAuth, Rejection, ReplyBody};

    /// The one-copy header path writes exactly what the general encoder
    /// writes, for every message shape, with and without auth bodies.
    /// Arguments whose encoder panics leave the buffer as it was, and no
    /// XID is taken for them.
    #[test]
    fn a_panicking_argument_encoder_leaves_no_part_of_a_record() {
        let mut dst = BytesMut::from(&b"earlier record"[..]);
        let mut asked = false;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            encode_call_record_with(
                &CallHeader::new(1, 2, 3),
                |dst| {
                    dst.extend_from_slice(&[1; 100]);
                    panic!("an encoder fails");
                },
                || {
                    asked = true;
                    7
                },
                &mut dst,
            )
        }));
        assert!(result.is_err());
        assert!(!asked, "no XID is taken for a record never queued");
        assert_eq!(&dst[..], b"earlier record");
    }

    #[test]
    fn the_fast_header_path_matches_the_general_encoder() {
        let auth = OpaqueAuth {
            flavor: 1,
            body: Bytes::from_static(b"abcde"),
        };
        let payload = Bytes::from_static(b"payload!!");
        let mut messages = Vec::new();
        for cred in [OpaqueAuth::none(), auth.clone()] {
            for verf in [OpaqueAuth::none(), auth.clone()] {
                let header = CallHeader {
                    cred: cred.clone(),
                    verf: verf.clone(),
                    ..CallHeader::new(100_000, 2, 4)
                };
                messages.push(Message::call(7, header, payload.clone()));
            }
        }
        let statuses = [
            AcceptStatus::Success,
            AcceptStatus::ProgUnavail,
            AcceptStatus::ProgMismatch { low: 2, high: 4 },
            AcceptStatus::ProcUnavail,
            AcceptStatus::GarbageArgs,
            AcceptStatus::SystemErr,
        ];
        for verf in [OpaqueAuth::none(), auth] {
            for status in statuses {
                let body = ReplyBody::Accepted {
                    verf: verf.clone(),
                    status,
                };
                messages.push(Message::reply(9, body, payload.clone()));
            }
        }
        for rejection in [
            Rejection::RpcMismatch { low: 2, high: 2 },
            Rejection::AuthError(AuthStat::TOO_WEAK),
        ] {
            messages.push(Message::reply(
                11,
                ReplyBody::Denied(rejection),
                Bytes::new(),
            ));
        }
        for message in &messages {
            if let MessageBody::Call { header, args } = &message.body {
                let mut direct = BytesMut::new();
                encode_call_record(message.xid, header, args, &mut direct);
                let mut whole = BytesMut::new();
                encode_record(message, &mut whole);
                assert_eq!(direct, whole, "{message:?}");
                let mut with = BytesMut::from(&b"before"[..]);
                let write = |dst: &mut BytesMut| dst.extend_from_slice(args);
                encode_call_record_with(header, write, || message.xid, &mut with);
                assert_eq!(with[..6], b"before"[..]);
                assert_eq!(with[6..], whole[..], "{message:?}");
            }
            let mut fast = BytesMut::new();
            encode_record(message, &mut fast);
            let mut body = BytesMut::new();
            message.encode(&mut body);
            let mut general = BytesMut::new();
            RecordEncoder::default().encode(&body, &mut general);
            assert_eq!(fast, general, "{message:?}");
        }
    }
}
