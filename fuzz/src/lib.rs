//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use bytes::BytesMut;
use peerwire::proto::xdr::padding;
use peerwire::proto::{Credential, MAX_AUTH_BYTES, Message, MessageBody, OpaqueAuth, ReplyBody};

/// A fuzz input for the stream targets: a byte stream and the sizes of the
/// reads in which a connection receives it.
///
/// Layout of the raw input:
///
/// ```text
/// byte 0        control: low 4 bits = n, high 4 bits = flags for the target
/// bytes 1..=n   read sizes, 0 to 255 each (0 is an empty read)
/// the rest      the stream
/// ```
///
/// The sizes are used in turn, over and over. With n = 0, or only zeros,
/// the stream is fed one byte at a time.
#[derive(Clone, Debug)]
pub struct StreamInput<'a> {
    /// The high 4 bits of the control byte.
    pub flags: u8,
    sizes: Vec<usize>,
    /// The stream.
    pub payload: &'a [u8],
}

impl<'a> StreamInput<'a> {
    /// Splits a raw fuzz input.
    pub fn parse(data: &'a [u8]) -> StreamInput<'a> {
        let (control, rest) = match data.split_first() {
            Some((&control, rest)) => (control, rest),
            None => (0, data),
        };
        let n = usize::from(control & 0x0f).min(rest.len());
        let (sizes, payload) = rest.split_at(n);
        let mut sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
        if sizes.iter().all(|&s| s == 0) {
            sizes = vec![1];
        }
        StreamInput {
            flags: control >> 4,
            sizes,
            payload,
        }
    }

    /// The stream, cut into the reads. Concatenated, they give `payload`.
    pub fn chunks(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let mut rest = self.payload;
        let mut sizes = self.sizes.iter().cycle();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let size = (*sizes.next()?).min(rest.len());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            Some(chunk)
        })
    }
}

/// Parses `auth` by its flavor. When it parses, checks that the credential
/// builds an `opaque_auth` again, that this parses to the same credential,
/// and that the body written is the body read (up to what the parser
/// ignores: trailing bytes, the contents of XDR padding, AUTH_NONE's body).
pub fn check_credential(auth: &OpaqueAuth) -> Option<Credential> {
    assert!(auth.body.len() <= MAX_AUTH_BYTES as usize);
    let cred = Credential::parse(auth).ok()?;
    let rebuilt = cred
        .to_opaque_auth()
        .unwrap_or_else(|e| panic!("a parsed credential must fit again ({e}): {cred:?}"));
    assert_eq!(rebuilt.flavor, auth.flavor);

    let expected = match &cred {
        Credential::None => Vec::new(),
        Credential::Other(_) => auth.body.to_vec(),
        Credential::Sys(_) | Credential::GlusterfsV2(_) | Credential::GlusterfsV3(_) => {
            // The parser reads a prefix of the body; writing gives that
            // prefix back, with its padding zeroed.
            assert!(
                rebuilt.body.len() <= auth.body.len(),
                "rebuilt body longer than the one parsed: {cred:?}"
            );
            let mut expected = auth.body[..rebuilt.body.len()].to_vec();
            match &cred {
                Credential::Sys(sys) => {
                    let start = 8 + sys.machine_name.len();
                    expected[start..start + padding(sys.machine_name.len())].fill(0);
                }
                Credential::GlusterfsV2(v2) => zero_tail(&mut expected, padding(v2.lk_owner.len())),
                Credential::GlusterfsV3(v3) => zero_tail(&mut expected, padding(v3.lk_owner.len())),
                _ => unreachable!(),
            }
            expected
        }
    };
    assert_eq!(rebuilt.body[..], expected[..], "{cred:?}");

    let again = Credential::parse(&rebuilt)
        .unwrap_or_else(|e| panic!("a rebuilt credential must parse ({e}): {cred:?}"));
    assert_eq!(again, cred);
    assert_eq!(again.to_opaque_auth().as_ref(), Ok(&rebuilt));
    Some(cred)
}

fn zero_tail(bytes: &mut [u8], n: usize) {
    let len = bytes.len();
    bytes[len - n..].fill(0);
}

/// Checks a message decoded from `record`: it encodes to exactly
/// `encoded_len()` bytes, to the record's bytes (with any non-zero XDR
/// padding of the auth bodies zeroed), and decodes back to itself. Runs
/// its credential and verifiers through [`check_credential`].
pub fn check_message(record: &[u8], message: &Message) {
    let mut encoded = BytesMut::new();
    message.encode(&mut encoded);
    assert_eq!(message.encoded_len(), encoded.len(), "{message:?}");

    // Where the auth bodies sit in the record, to zero their padding.
    let mut expected = record.to_vec();
    let mut zero_padding = |body_at: usize, len: usize| {
        expected[body_at + len..body_at + len + padding(len)].fill(0);
        body_at + len + padding(len)
    };
    match &message.body {
        MessageBody::Call { header, args } => {
            assert!(header.cred.body.len() <= MAX_AUTH_BYTES as usize);
            assert!(header.verf.body.len() <= MAX_AUTH_BYTES as usize);
            assert!(
                record.ends_with(args),
                "the arguments are the record's tail"
            );
            // xid, CALL, rpcvers, prog, vers, proc, then cred flavor and length.
            let verf_at = zero_padding(32, header.cred.body.len());
            zero_padding(verf_at + 8, header.verf.body.len());
            check_credential(&header.cred);
            check_credential(&header.verf);
        }
        MessageBody::Reply { body, results } => {
            assert!(
                record.ends_with(results),
                "the results are the record's tail"
            );
            if let ReplyBody::Accepted { verf, .. } = body {
                assert!(verf.body.len() <= MAX_AUTH_BYTES as usize);
                // xid, REPLY, MSG_ACCEPTED, then verf flavor and length.
                zero_padding(20, verf.body.len());
                check_credential(verf);
            }
        }
    }
    assert_eq!(encoded[..], expected[..], "{message:?}");

    let again = Message::decode(encoded.clone().freeze())
        .unwrap_or_else(|e| panic!("a re-encoded message must decode ({e}): {message:?}"));
    assert_eq!(&again, message);
    let mut twice = BytesMut::new();
    again.encode(&mut twice);
    assert_eq!(twice, encoded);
}
