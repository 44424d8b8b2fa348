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

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::proto::{
    DecodeError, MAX_FRAGMENT_LEN, Message, RecordDecoder, RecordEncoder, RecordLimits,
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
