//! Size limits in the user's terms.

use crate::proto::{InvalidLimits, MAX_AUTH_BYTES, MAX_RECORD_CEILING, RecordLimits};

/// What one message may carry: the arguments of a call a server accepts,
/// or the results of a reply a client accepts. RPC headers and record
/// marking come on top and are allowed for: the record limit that the
/// decoder enforces (before it allocates) is
/// `max_payload + `[`Limits::HEADER_ALLOWANCE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_payload: usize,
    max_fragments: u32,
}

impl Default for Limits {
    /// 16 MiB of arguments or results, in 4096 fragments of any size, or
    /// more fragments of 64 bytes on average (see
    /// [`RecordLimits::fragments_allowed`]).
    fn default() -> Limits {
        Limits {
            max_payload: 16 << 20,
            max_fragments: 4096,
        }
    }
}

impl Limits {
    /// The largest RPC header a record may carry besides its payload: a
    /// call header (6 words) with a credential and a verifier of
    /// [`MAX_AUTH_BYTES`] each, which is larger than any reply header.
    pub const HEADER_ALLOWANCE: usize = 24 + 2 * (8 + MAX_AUTH_BYTES as usize);

    /// At most `max_payload` bytes of arguments or results (at most 1 GiB
    /// minus the header allowance).
    pub fn new(max_payload: usize) -> Result<Limits, InvalidLimits> {
        let limits = Limits {
            max_payload,
            ..Limits::default()
        };
        limits.check()?;
        Ok(limits)
    }

    /// The same limits with `max_fragments` fragments allowed to any
    /// record, whatever their size; a record may have one more per
    /// [`crate::proto::BYTES_PER_EXTRA_FRAGMENT`] bytes of its data (see
    /// [`RecordLimits::fragments_allowed`]).
    pub fn with_max_fragments(self, max_fragments: u32) -> Result<Limits, InvalidLimits> {
        let limits = Limits {
            max_fragments,
            ..self
        };
        limits.check()?;
        Ok(limits)
    }

    /// The most argument or result bytes accepted.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The fragments any record may have, whatever their size.
    pub fn max_fragments(&self) -> u32 {
        self.max_fragments
    }

    /// The record limits these come to.
    pub fn record_limits(&self) -> RecordLimits {
        let record = self.max_payload + Self::HEADER_ALLOWANCE;
        let fragment = u32::try_from(record).unwrap_or(crate::proto::MAX_FRAGMENT_LEN);
        RecordLimits::new(fragment, record, self.max_fragments)
            .expect("checked when the limits were made")
    }

    fn check(&self) -> Result<(), InvalidLimits> {
        if self.max_payload > MAX_RECORD_CEILING - Self::HEADER_ALLOWANCE {
            return Err(InvalidLimits::new(
                "the payload limit must leave room for the RPC header within 1 GiB",
            ));
        }
        RecordLimits::new(
            1,
            self.max_payload + Self::HEADER_ALLOWANCE,
            self.max_fragments,
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_limit_adds_the_largest_header() {
        let limits = Limits::new(64).unwrap();
        assert_eq!(limits.record_limits().max_record(), 64 + 840);
        assert!(Limits::new(MAX_RECORD_CEILING).is_err());
        assert!(
            Limits::new(0).is_ok(),
            "a NULL-only service carries nothing"
        );
        assert!(Limits::default().with_max_fragments(0).is_err());
    }
}
