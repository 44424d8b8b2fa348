//! What a TLS server reads before the handshake: in direct mode, a look at
//! the first byte (TLS opens with a handshake record, 0x16); in STARTTLS
//! mode (RFC 9289), the probe, answered before TLS starts on the same
//! connection. The judging is the pure [`crate::conn::starttls`]'s; this
//! moves its bytes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::conn::starttls::{self, NotAProbe, ProbeStep};
use crate::tls::{HandshakeFailure, TlsMode, io_failure};

/// Why a connection got no further than its first bytes.
#[derive(Debug)]
pub(super) enum BeforeTls {
    /// TLS is required and the peer spoke plain RPC (or, to a STARTTLS
    /// server, anything but the probe).
    PlainText(NotAProbe),
    /// The peer closed first.
    Closed,
    /// Reading or writing failed.
    Io(HandshakeFailure),
}

/// Reads (direct: peeks at) what comes before the TLS handshake, and
/// answers the probe in STARTTLS mode. `Ok`: the handshake may start.
pub(super) async fn before_tls(stream: &mut TcpStream, mode: TlsMode) -> Result<(), BeforeTls> {
    match mode {
        TlsMode::Direct => {
            // Plain record marking never opens with 0x16 for a sane record
            // (that would be a non-last fragment of 369 MiB).
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await.map_err(io)? == 0 {
                return Err(BeforeTls::Closed);
            }
            if first[0] != 0x16 {
                let mut head = [0u8; 64];
                let n = stream.peek(&mut head).await.map_err(io)?;
                let reason = match starttls::judge_first_record(&head[..n]) {
                    ProbeStep::Refuse(reason) => reason,
                    // A probe (or the start of a call): plain RPC either way.
                    _ => NotAProbe::PlainCall {
                        program: 0,
                        procedure: 0,
                        flavor: 0,
                    },
                };
                return Err(BeforeTls::PlainText(reason));
            }
            Ok(())
        }
        TlsMode::StartTls => {
            let mut buf = Vec::with_capacity(64);
            loop {
                match starttls::judge_first_record(&buf) {
                    ProbeStep::Need(total) => {
                        // Read no further than the probe: the ClientHello
                        // after it is the handshake's to read.
                        let start = buf.len();
                        buf.resize(total, 0);
                        let n = stream.read(&mut buf[start..]).await.map_err(io)?;
                        if n == 0 {
                            return Err(BeforeTls::Closed);
                        }
                        buf.truncate(start + n);
                    }
                    ProbeStep::Upgrade { reply, .. } => {
                        stream.write_all(&reply).await.map_err(io)?;
                        return Ok(());
                    }
                    ProbeStep::Refuse(reason) => return Err(BeforeTls::PlainText(reason)),
                }
            }
        }
    }
}

/// A read or write that failed before the handshake.
fn io(error: std::io::Error) -> BeforeTls {
    BeforeTls::Io(io_failure(&error))
}
