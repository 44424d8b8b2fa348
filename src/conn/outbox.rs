//! Write batching (pure): whole records queued in one buffer, and an exact
//! account of which records have had bytes handed to the kernel.
//!
//! Both drivers write through an [`Outbox`]: records are encoded straight
//! into its buffer (one copy of the arguments or results, no buffer of the
//! record's own), and the driver writes [`Outbox::pending`] with as few
//! syscalls as the kernel allows. After each write the driver reports the
//! bytes taken with [`Outbox::consumed`], which hands back the tag of every
//! record whose *first* byte has now been taken. That is the exact meaning
//! of "sent": a record none of whose bytes reached the kernel can be
//! retried safely; one with any byte there may reach the peer and run.
//!
//! Only whole records are ever queued, so a caller that goes away can never
//! leave half a record on the wire: the bytes already queued are written in
//! full, whatever happens to the caller.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

use crate::proto::{CallHeader, Message};

/// A buffer above this capacity is given back once it drains, so that one
/// large record does not pin its memory while the connection stays busy.
/// (Below it the buffer is kept for reuse while busy: regrowing a batch
/// buffer for every batch costs copies. The drivers give it back when the
/// connection goes quiet, see [`Outbox::release`].)
const KEEP_CAPACITY: usize = 4 << 20;

/// Queued records, in stream order, with a tag per record.
#[derive(Debug)]
pub struct Outbox<T> {
    buf: BytesMut,
    /// The stream offset of each record's first byte, with its tag; in
    /// order. Offsets count from the first byte ever queued.
    marks: VecDeque<(u64, T)>,
    /// The stream offset of `buf[0]`.
    base: u64,
}

impl<T> Default for Outbox<T> {
    fn default() -> Outbox<T> {
        Outbox::new()
    }
}

impl<T> Outbox<T> {
    /// An empty outbox; it holds no memory until a record is queued.
    pub fn new() -> Outbox<T> {
        Outbox {
            buf: BytesMut::new(),
            marks: VecDeque::new(),
            base: 0,
        }
    }

    /// Queues `message` as one record (of one fragment, or several when it
    /// is over 2^31-1 bytes), tagged `tag`.
    pub fn push(&mut self, tag: T, message: &Message) {
        let start = self.base + self.buf.len() as u64;
        crate::codec::encode_record(message, &mut self.buf);
        self.marks.push_back((start, tag));
    }

    /// Queues a call as one record, straight from its parts, tagged `tag`.
    pub fn push_call(&mut self, tag: T, xid: u32, header: &CallHeader, args: &[u8]) {
        let start = self.base + self.buf.len() as u64;
        crate::codec::encode_call_record(xid, header, args, &mut self.buf);
        self.marks.push_back((start, tag));
    }

    /// Queues a call as one record whose arguments `args` encodes straight
    /// into the buffer (no buffer of their own). Only once they are written
    /// does `tag_xid` give the record's tag and XID: if `args` panics,
    /// nothing was queued and nothing was asked for.
    pub fn push_call_with(
        &mut self,
        header: &CallHeader,
        args: impl FnOnce(&mut BytesMut),
        tag_xid: impl FnOnce() -> (T, u32),
    ) {
        let start = self.base + self.buf.len() as u64;
        let mut tag = None;
        let xid = || {
            let (t, xid) = tag_xid();
            tag = Some(t);
            xid
        };
        crate::codec::encode_call_record_with(header, args, xid, &mut self.buf);
        let tag = tag.expect("encode_call_record_with asks for the XID once it returns");
        self.marks.push_back((start, tag));
    }

    /// The bytes not yet handed to the kernel.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Records queued whose first byte has not been written.
    pub fn records_waiting(&self) -> usize {
        self.marks.len()
    }

    /// Bytes of memory held.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The kernel took the first `n` pending bytes. Calls `sent` with the
    /// tag of every record whose first byte is among them, in order.
    ///
    /// # Panics
    ///
    /// If `n` is more than [`Outbox::len`].
    pub fn consumed(&mut self, n: usize, mut sent: impl FnMut(T)) {
        assert!(n <= self.buf.len(), "consumed more than was pending");
        self.buf.advance(n);
        self.base += n as u64;
        while let Some((start, _)) = self.marks.front() {
            if *start >= self.base {
                break;
            }
            let (_, tag) = self.marks.pop_front().expect("checked above");
            sent(tag);
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
    }

    /// Gives the buffer's memory back when nothing is pending: an idle
    /// connection holds no write buffer.
    pub fn release(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn call(xid: u32, len: usize) -> Message {
        Message::call(xid, CallHeader::new(1, 1, 1), Bytes::from(vec![7u8; len]))
    }

    #[test]
    fn a_record_is_sent_once_its_first_byte_is_written() {
        let mut out = Outbox::new();
        out.push('a', &call(1, 8));
        let a_len = out.len();
        out.push('b', &call(2, 1000));
        let mut sent = Vec::new();
        out.consumed(1, |t| sent.push(t));
        assert_eq!(sent, ['a'], "one byte of a is enough");
        out.consumed(a_len - 1, |t| sent.push(t));
        assert_eq!(sent, ['a'], "b has no byte out yet");
        out.consumed(1, |t| sent.push(t));
        assert_eq!(sent, ['a', 'b']);
        let rest = out.len();
        out.consumed(rest, |t| sent.push(t));
        assert!(out.is_empty());
        assert_eq!(sent, ['a', 'b']);
    }

    #[test]
    fn a_call_encoded_in_place_is_one_whole_record() {
        let mut out = Outbox::new();
        out.push('a', &call(1, 8));
        let header = CallHeader::new(1, 1, 1);
        out.push_call_with(&header, |b| b.extend_from_slice(&[7; 12]), || ('b', 2));
        let mut expected = BytesMut::new();
        crate::codec::encode_record(&call(1, 8), &mut expected);
        crate::codec::encode_record(&call(2, 12), &mut expected);
        assert_eq!(out.pending(), &expected[..]);
        let mut sent = Vec::new();
        out.consumed(out.len(), |t| sent.push(t));
        assert_eq!(sent, ['a', 'b']);
    }

    #[test]
    fn a_large_buffer_is_given_back_when_drained() {
        let mut out = Outbox::new();
        out.push((), &call(1, 8 << 20));
        let n = out.len();
        out.consumed(n, |()| {});
        assert_eq!(out.capacity(), 0);
        out.push((), &call(2, 8));
        out.release();
        assert!(out.capacity() > 0, "nothing is released while bytes wait");
        let n = out.len();
        out.consumed(n, |()| {});
        out.release();
        assert_eq!(out.capacity(), 0);
    }
}
