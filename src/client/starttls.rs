//! The client's RFC 9289 probe, sent before the TLS handshake in
//! STARTTLS mode: a NULL call with the `AUTH_TLS` credential, whose answer
//! must be the `STARTTLS` verifier. The judging is the pure
//! [`crate::conn::starttls`]'s; this moves its bytes.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::starttls;
use crate::proto::{RecordDecoder, RecordLimits};
use crate::stream::Transport;
use crate::tls::TlsError;

/// Sends the probe (a NULL call of `program` and `version`) and reads its
/// answer: `Ok` when the server agreed to start TLS, having sent nothing
/// after its answer.
pub(super) async fn probe(
    transport: &mut Transport,
    (program, version): (u32, u32),
) -> Result<(), TlsError> {
    let failed = |error: std::io::Error| TlsError::Handshake(crate::tls::io_failure(&error));
    let xid: u32 = rand::random();
    transport
        .write_all(&starttls::probe(xid, program, version))
        .await
        .map_err(failed)?;
    let max = starttls::MAX_PROBE_RECORD;
    let limits = RecordLimits::new(max as u32, max, 1).expect("valid limits");
    let mut records = RecordDecoder::new(limits);
    let mut buf = BytesMut::new();
    let record = loop {
        if starttls::looks_like_tls(&buf) {
            return Err(TlsError::StartTlsRefused);
        }
        match records.decode(&mut buf) {
            Ok(Some(record)) => break record,
            Ok(None) => {}
            Err(_) => return Err(TlsError::StartTlsRefused),
        }
        match transport.read_buf(&mut buf).await {
            Ok(0) => return Err(TlsError::StartTlsRefused),
            Ok(_) => {}
            Err(error) => return Err(failed(error)),
        }
    };
    if !buf.is_empty() || !starttls::answers_starttls(record, xid) {
        return Err(TlsError::StartTlsRefused);
    }
    Ok(())
}
