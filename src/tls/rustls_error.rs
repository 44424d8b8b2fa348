//! rustls's errors in our terms: a certificate rule ([`CertError`]), a
//! peer's fatal alert ([`TlsAlert`]), or another handshake failure
//! ([`HandshakeFailure`]).

use rustls::CertificateError;

use super::{CertError, HandshakeFailure, TlsAlert, TlsError};

/// What ended a handshake.
pub(crate) enum Failed {
    /// A certificate rule, rustls's or ours.
    Certificate(CertError),
    /// The peer sent a fatal alert.
    Alert(TlsAlert),
    /// Anything else.
    Handshake(HandshakeFailure),
}

/// What ended a handshake whose I/O failed with `error` (rustls reports
/// its own errors inside an `io::Error`).
pub(crate) fn classify(error: &std::io::Error) -> Failed {
    let inner = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::AlertReceived(alert)) => {
            Failed::Alert(TlsAlert::from_code(u8::from(*alert)))
        }
        Some(rustls) => match cert_error(rustls) {
            Some(cert) => Failed::Certificate(cert),
            None => Failed::Handshake(handshake_failure(rustls)),
        },
        None => Failed::Handshake(io_failure(error)),
    }
}

/// A client's handshake failure as a [`TlsError`]: a fatal alert from the
/// server is its refusal of us.
pub(crate) fn handshake_error(error: &std::io::Error) -> TlsError {
    match classify(error) {
        Failed::Certificate(cert) => TlsError::Certificate(cert),
        Failed::Alert(alert) => TlsError::Refused { alert },
        Failed::Handshake(failure) => TlsError::Handshake(failure),
    }
}

/// An I/O error during a handshake or the probe before it.
pub(crate) fn io_failure(error: &std::io::Error) -> HandshakeFailure {
    HandshakeFailure::Io {
        kind: error.kind(),
        detail: error.to_string(),
    }
}

/// A rustls error that is neither a certificate rule nor an alert.
fn handshake_failure(error: &rustls::Error) -> HandshakeFailure {
    let detail = error.to_string();
    match error {
        rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
            HandshakeFailure::Incompatible { detail }
        }
        rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. }
        | rustls::Error::InvalidMessage(_)
        | rustls::Error::PeerMisbehaved(_)
        | rustls::Error::DecryptError
        | rustls::Error::PeerSentOversizedRecord
        | rustls::Error::UnsupportedNameType
        | rustls::Error::InvalidEncryptedClientHello(_) => HandshakeFailure::Misbehaved { detail },
        _ => HandshakeFailure::Local { detail },
    }
}

/// The certificate error inside a rustls error, when it is one.
pub(crate) fn cert_error(error: &rustls::Error) -> Option<CertError> {
    let invalid = |error: &dyn std::fmt::Display| CertError::Invalid {
        detail: error.to_string(),
    };
    Some(match error {
        rustls::Error::NoCertificatesPresented => CertError::NoClientCertificate,
        rustls::Error::InvalidCertificate(error) => match error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertError::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertError::NotYetValid
            }
            CertificateError::UnknownIssuer => CertError::UnknownIssuer,
            CertificateError::BadEncoding => CertError::Unparsable {
                detail: error.to_string(),
            },
            CertificateError::BadSignature
            | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                CertError::BadSignature
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                CertError::WrongPurpose
            }
            CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => {
                CertError::RevocationUnknown {
                    detail: error.to_string(),
                }
            }
            CertificateError::Other(other) => match other.0.downcast_ref::<CertError>() {
                Some(ours) => ours.clone(),
                None => invalid(other),
            },
            other => invalid(other),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{AlertDescription, PeerIncompatible, PeerMisbehaved};

    use super::*;

    fn io(error: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn certificate_errors_keep_their_kind() {
        let cert = |e: CertificateError| cert_error(&rustls::Error::InvalidCertificate(e));
        assert_eq!(cert(CertificateError::Expired), Some(CertError::Expired));
        assert_eq!(
            cert(CertificateError::NotValidYet),
            Some(CertError::NotYetValid)
        );
        assert_eq!(
            cert(CertificateError::UnknownIssuer),
            Some(CertError::UnknownIssuer)
        );
        assert_eq!(
            cert(CertificateError::BadSignature),
            Some(CertError::BadSignature)
        );
        assert_eq!(
            cert(CertificateError::InvalidPurpose),
            Some(CertError::WrongPurpose)
        );
        assert!(matches!(
            cert(CertificateError::UnknownRevocationStatus),
            Some(CertError::RevocationUnknown { .. })
        ));
        assert!(matches!(
            cert(CertificateError::BadEncoding),
            Some(CertError::Unparsable { .. })
        ));
        assert!(matches!(
            cert(CertificateError::UnhandledCriticalExtension),
            Some(CertError::Invalid { .. })
        ));
        // Our own rule, carried through rustls, comes back as it was.
        let ours = CertError::NoIpSan {
            cn: Some("a".into()),
        };
        assert_eq!(
            cert(CertificateError::Other(rustls::OtherError(Arc::new(
                ours.clone()
            )))),
            Some(ours)
        );
        assert_eq!(
            cert_error(&rustls::Error::NoCertificatesPresented),
            Some(CertError::NoClientCertificate)
        );
        assert_eq!(cert_error(&rustls::Error::DecryptError), None);
    }

    #[test]
    fn a_handshake_failure_says_what_kind_it_is() {
        let failure = |e: rustls::Error| match classify(&io(e)) {
            Failed::Handshake(failure) => failure,
            _ => panic!("not a handshake failure"),
        };
        assert!(matches!(
            failure(rustls::Error::PeerIncompatible(
                PeerIncompatible::NoCipherSuitesInCommon
            )),
            HandshakeFailure::Incompatible { .. }
        ));
        assert!(matches!(
            failure(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::TooManyEmptyFragments
            )),
            HandshakeFailure::Misbehaved { .. }
        ));
        assert!(matches!(
            failure(rustls::Error::DecryptError),
            HandshakeFailure::Misbehaved { .. }
        ));
        assert!(matches!(
            failure(rustls::Error::FailedToGetRandomBytes),
            HandshakeFailure::Local { .. }
        ));
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            classify(&eof),
            Failed::Handshake(HandshakeFailure::Io {
                kind: std::io::ErrorKind::UnexpectedEof,
                ..
            })
        ));
    }

    #[test]
    fn an_alert_is_the_servers_refusal_on_a_client() {
        let alert = io(rustls::Error::AlertReceived(AlertDescription::AccessDenied));
        assert!(matches!(
            classify(&alert),
            Failed::Alert(a) if a == TlsAlert::ACCESS_DENIED
        ));
        assert_eq!(
            handshake_error(&alert),
            TlsError::Refused {
                alert: TlsAlert::ACCESS_DENIED
            }
        );
        let cert = io(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert_eq!(
            handshake_error(&cert),
            TlsError::Certificate(CertError::Expired)
        );
    }
}
