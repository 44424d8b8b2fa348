//! Decode errors: small, `Copy` and comparable, with the byte offset.

use std::fmt;

/// What was wrong with the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A fragment header announced more than the fragment limit.
    FragmentTooLong {
        /// The announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The fragments of one record add up to more than the record limit.
    RecordTooLong {
        /// The length the record would reach.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A record has more fragments than its data allows (see
    /// [`crate::proto::RecordLimits::fragments_allowed`]).
    TooManyFragments {
        /// The fragments allowed for the data before the refused one.
        max: u32,
    },
    /// The stream ended inside a record.
    TruncatedRecord,
    /// The input ended before a value was complete.
    UnexpectedEnd {
        /// Bytes needed from the offset.
        needed: u32,
    },
    /// A variable-length item is longer than its bound.
    LengthOverBound {
        /// The length on the wire.
        len: u32,
        /// The bound.
        max: u32,
    },
    /// An XDR bool that is neither 0 nor 1.
    InvalidBool(u32),
    /// A string that is not UTF-8.
    InvalidUtf8,
    /// `msg_type` is neither CALL (0) nor REPLY (1).
    UnknownMessageType(u32),
    /// `reply_stat` is neither MSG_ACCEPTED (0) nor MSG_DENIED (1).
    UnknownReplyStat(u32),
    /// `accept_stat` is not one of RFC 5531's six.
    UnknownAcceptStat(u32),
    /// `reject_stat` is neither RPC_MISMATCH (0) nor AUTH_ERROR (1).
    UnknownRejectStat(u32),
    /// A value that decoded but breaks its type's rules.
    Invalid(&'static str),
    /// Bytes were left after a value that should have used them all.
    TrailingBytes {
        /// How many.
        len: u32,
    },
}

impl DecodeErrorKind {
    /// True when the input broke one of our record limits (fragment
    /// length, record length, fragment count) rather than the format:
    /// the peer may be sound, and our limit too small for it.
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self,
            DecodeErrorKind::FragmentTooLong { .. }
                | DecodeErrorKind::RecordTooLong { .. }
                | DecodeErrorKind::TooManyFragments { .. }
        )
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeErrorKind::FragmentTooLong { len, max } => {
                write!(f, "fragment of {len} bytes exceeds the limit of {max}")
            }
            DecodeErrorKind::RecordTooLong { len, max } => {
                write!(
                    f,
                    "record of at least {len} bytes exceeds the limit of {max}"
                )
            }
            DecodeErrorKind::TooManyFragments { max } => {
                write!(
                    f,
                    "record has more than the {max} fragments its data allows"
                )
            }
            DecodeErrorKind::TruncatedRecord => f.write_str("stream ended inside a record"),
            DecodeErrorKind::UnexpectedEnd { needed } => {
                write!(f, "input ended {needed} bytes short")
            }
            DecodeErrorKind::LengthOverBound { len, max } => {
                write!(f, "length {len} exceeds the bound of {max}")
            }
            DecodeErrorKind::InvalidBool(v) => write!(f, "bool is {v}, not 0 or 1"),
            DecodeErrorKind::InvalidUtf8 => f.write_str("string is not UTF-8"),
            DecodeErrorKind::UnknownMessageType(v) => write!(f, "unknown msg_type {v}"),
            DecodeErrorKind::UnknownReplyStat(v) => write!(f, "unknown reply_stat {v}"),
            DecodeErrorKind::UnknownAcceptStat(v) => write!(f, "unknown accept_stat {v}"),
            DecodeErrorKind::UnknownRejectStat(v) => write!(f, "unknown reject_stat {v}"),
            DecodeErrorKind::Invalid(what) => f.write_str(what),
            DecodeErrorKind::TrailingBytes { len } => write!(f, "{len} unexpected trailing bytes"),
        }
    }
}

/// A decode failure: what, and at which byte offset.
///
/// For record marking the offset counts from the start of the stream; for
/// XDR and messages it counts from the start of the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// Where: the offset of the item that failed.
    pub offset: u64,
}

impl DecodeError {
    /// An error of `kind` at `offset`.
    pub fn new(kind: DecodeErrorKind, offset: u64) -> DecodeError {
        DecodeError { kind, offset }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for DecodeError {}
