//! [`XdrString`]: an XDR `string` kept as the bytes on the wire.

use std::fmt::{self, Write as _};

use bytes::Bytes;

/// An XDR `string`, kept as the bytes on the wire.
///
/// RFC 4506 §4.11 calls a string ASCII, and rpcgen's C passes any byte
/// through, so a string a peer sends need not be UTF-8: decoding it never
/// fails for its content. [`XdrString::to_str`] is the checked view.
///
/// Decoded by a reader made with [`XdrReader::from_shared`](super::XdrReader::from_shared),
/// it shares the received record's memory (no copy).
///
/// It is peer-supplied text: [`Display`](fmt::Display) writes it with
/// control characters, backslashes and bytes that are not UTF-8 escaped
/// (`\n`, `\\`, `\xff`), so it can be logged safely; [`Debug`](fmt::Debug)
/// does the same inside quotes.
///
/// ```
/// use peerwire::proto::xdr::XdrString;
///
/// let name = XdrString::from(b"brick\xff\n".to_vec());
/// assert!(name.to_str().is_err());
/// assert_eq!(name.to_string(), r"brick\xff\n");
/// assert_eq!(XdrString::from("ok").to_str(), Ok("ok"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct XdrString(Bytes);

impl XdrString {
    /// An empty string.
    pub const fn new() -> XdrString {
        XdrString(Bytes::new())
    }

    /// A string of `'static` text, without a copy.
    pub const fn from_static(s: &'static str) -> XdrString {
        XdrString(Bytes::from_static(s.as_bytes()))
    }

    /// The bytes, as on the wire (without length or padding).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The string as UTF-8, or the error saying where it is not.
    pub fn to_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The bytes, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the string with control characters, backslashes and
    /// non-UTF-8 bytes escaped (and `"` too when `quote`).
    fn write_escaped(&self, f: &mut fmt::Formatter<'_>, quote: bool) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() || c == '\\' || (quote && c == '"') {
                    write!(f, "{}", c.escape_debug())?;
                } else {
                    f.write_char(c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for XdrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_escaped(f, false)
    }
}

impl fmt::Debug for XdrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        self.write_escaped(f, true)?;
        f.write_char('"')
    }
}

impl From<&str> for XdrString {
    fn from(s: &str) -> XdrString {
        XdrString(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&[u8]> for XdrString {
    fn from(s: &[u8]) -> XdrString {
        XdrString(Bytes::copy_from_slice(s))
    }
}

impl From<String> for XdrString {
    fn from(s: String) -> XdrString {
        XdrString(Bytes::from(s))
    }
}

impl From<Vec<u8>> for XdrString {
    fn from(s: Vec<u8>) -> XdrString {
        XdrString(Bytes::from(s))
    }
}

impl From<Bytes> for XdrString {
    fn from(s: Bytes) -> XdrString {
        XdrString(s)
    }
}

impl From<XdrString> for Bytes {
    fn from(s: XdrString) -> Bytes {
        s.0
    }
}

impl AsRef<[u8]> for XdrString {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for XdrString {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for XdrString {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_control_backslash_and_invalid_bytes() {
        let s = XdrString::from(b"a\\b\x1b[31m\xc3\xa9\xff\"".to_vec());
        assert_eq!(s.to_string(), "a\\\\b\\u{1b}[31m\u{e9}\\xff\"");
        assert_eq!(format!("{s:?}"), "\"a\\\\b\\u{1b}[31m\u{e9}\\xff\\\"\"");
    }

    #[test]
    fn non_utf8_is_kept_and_the_checked_view_refuses_it() {
        let s = XdrString::from(vec![b'x', 0xff]);
        assert_eq!(s.as_bytes(), b"x\xff");
        assert_eq!(s.to_str().unwrap_err().valid_up_to(), 1);
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty());
        assert_eq!(s.into_bytes(), Bytes::from_static(b"x\xff"));
    }

    #[test]
    fn conversions_agree() {
        let a = XdrString::from("peer");
        assert_eq!(a, XdrString::from(String::from("peer")));
        assert_eq!(a, XdrString::from(Bytes::from_static(b"peer")));
        assert_eq!(a, XdrString::from_static("peer"));
        assert_eq!(a, "peer");
        assert!(XdrString::default().is_empty());
        let (x, y) = (XdrString::from("a"), XdrString::from("b"));
        assert!(x < y);
    }
}
