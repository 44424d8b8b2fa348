//! # Mutual TLS
//!
//! Cargo feature `tls`, on by default (rustls 0.23 on the *ring* provider,
//! through tokio-rustls;
//! rustls-webpki for revocation; x509-parser; no system library). One
//! verdict in which the certificate, the observed address, the peer table
//! and the claimed node ID must all agree, in both directions. The rules
//! themselves are plain functions in [`crate::tls`], whatever the feature.
//!
//! A throwaway CA (made with `rcgen` here; in production, PEM files and
//! `TlsIdentity::from_pem_files(cert, key, ca)`), a server at 127.0.0.1
//! whose certificate names that address, and a client at 127.0.0.2 whose
//! certificate names its own; then a client whose certificate names
//! 127.0.0.2 but which connects from 127.0.0.3, refused by the server:
//!
//! ```
//! # #[cfg(not(feature = "tls"))] fn main() {}
//! # #[cfg(feature = "tls")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use peerwire::tls::{ClientTls, ServerCheck, ServerTls, TlsIdentity, TlsMode};
//! use peerwire::{CallContext, Client, ClientOptions, DisconnectCause, Endpoint, Error, Server,
//!                ServerOptions};
//! use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
//!
//! let mut params = CertificateParams::new(Vec::<String>::new())?;
//! params.distinguished_name.push(DnType::CommonName, "cluster CA");
//! params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
//! // Our chain's end-entity certificate, its key, and the CA that signs our peers.
//! let identity = |cn: &str, ip: &str| -> Result<TlsIdentity, Box<dyn std::error::Error>> {
//!     let mut params = CertificateParams::new(Vec::<String>::new())?;
//!     params.distinguished_name.push(DnType::CommonName, cn);
//!     params.subject_alt_names = vec![SanType::IpAddress(ip.parse()?)];
//!     let key = KeyPair::generate()?;
//!     let cert = params.signed_by(&key, &ca)?;
//!     let pem = (cert.pem(), key.serialize_pem(), ca.pem());
//!     Ok(TlsIdentity::from_pem(pem.0.as_bytes(), pem.1.as_bytes(), pem.2.as_bytes())?)
//! };
//!
//! let server = Server::new(ServerOptions {
//!     tls: Some(ServerTls { identity: identity("node-a", "127.0.0.1")?, mode: TlsMode::Direct }),
//!     ..ServerOptions::default()
//! })
//! .service(0x2000_0001, 1, |ctx: CallContext, _procedure, _args: Bytes| async move {
//!     // The client's certificate, already checked against the observed address.
//!     Ok(Bytes::from(ctx.tls.and_then(|peer| peer.cn.clone()).unwrap_or_default()))
//! })
//! .serve(&["127.0.0.1:0".parse()?])?;
//! let address = Endpoint::from(server.local_addrs()[0]);
//!
//! let client_tls = |ip: &str| -> Result<ClientOptions, Box<dyn std::error::Error>> {
//!     let tls = ClientTls {
//!         identity: identity("node-b", "127.0.0.2")?,
//!         mode: TlsMode::Direct,
//!         server: ServerCheck::DialledIp, // the server's certificate must name 127.0.0.1
//!     };
//!     Ok(ClientOptions { tls: Some(tls), ..ClientOptions::default() }
//!         .with_source(ip.parse::<peerwire::ScopedIp>()?))
//! };
//! let client = Client::new(vec![address.clone()], client_tls("127.0.0.2")?)?;
//! assert_eq!(&client.call(0x2000_0001, 1, 1, Bytes::new()).await?[..], b"node-b");
//! assert_eq!(client.tls_peer().and_then(|peer| peer.cn.clone()).as_deref(), Some("node-a"));
//!
//! // The same certificate from another address: refused in the handshake,
//! // and the call is known not to have run.
//! let elsewhere = Client::new(vec![address], client_tls("127.0.0.3")?)?;
//! match elsewhere.call(0x2000_0001, 1, 1, Bytes::new()).await {
//!     Err(Error::Disconnected { cause: DisconnectCause::TlsRefused(_), sent: false, .. }) => {}
//!     other => panic!("expected a TLS refusal, got {other:?}"),
//! }
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! - **Files**: `TlsIdentity::from_pem_files(cert, key, ca)` (or
//!   `from_pem` with bytes). An unreadable file, a file with no PEM of the
//!   right kind, or a key that does not match the certificate is an error
//!   naming the file.
//! - **Server**, after admission and before any RPC byte, within
//!   `handshake_timeout`:
//!   1. TLS from the first byte (`TlsMode::Direct`, GlusterFS's way) or
//!      after the RFC 9289 probe (`TlsMode::StartTls`). Anything else first
//!      (plain RPC, garbage, a probe to a direct server) is refused unread:
//!      [`VerdictReason::PlainTextRefused`](crate::VerdictReason::PlainTextRefused);
//!   2. a client certificate is required and must chain to the CA
//!      ([`CertError`](crate::tls::CertError)`::NoClientCertificate`,
//!      `UnknownIssuer`, `Expired`, `NotYetValid`);
//!   3. its IP SANs contain the **observed** source IP (`CertError::NoIpSan`,
//!      `IpMismatch`): IPv4-mapped callers compare as IPv4; a link-local SAN
//!      matches by IP, and the scope is judged by the peer table as before
//!      (a certificate carries no zone);
//!   4. with an identity, the HELLO's node ID equals the certificate's
//!      subject **CN** (GlusterFS's convention, so a gluster certificate
//!      works): `CertError::CnMismatch`; then the peer table must allow that
//!      ID from that address, as without TLS.
//!
//!   The address rule runs inside the handshake (a client-certificate
//!   verifier made for each connection), so a refused client gets the fatal
//!   alert `access_denied` rather than a bare close; TLS session resumption
//!   is off, so every connection's certificate meets the rule. A refusal is
//!   logged and recorded as a verdict naming the certificate's CN and SANs,
//!   the observed address and the rule that failed
//!   ([`VerdictReason::Certificate`](crate::VerdictReason::Certificate), and
//!   [`Verdict::tls`](crate::Verdict::tls) with the certificate's facts when
//!   the handshake got that far; a chain rustls refuses has none). Handlers
//!   see the certificate in [`CallContext::tls`](crate::CallContext::tls),
//!   the connection list in
//!   [`ConnectionInfo::tls`](crate::ConnectionInfo::tls).
//! - **Client**, on every connection and reconnection, within
//!   `connect_timeout`: the chain; then the server certificate must name the
//!   **dialled** IP as an IP SAN, or, with `ServerCheck::Cn(name)`, have that
//!   CN (glusterd's certificates usually carry only a CN); then, with an
//!   identity, the HELLO answer's node ID must be that CN, and the
//!   observed-address echo is checked as before. Failures are
//!   [`Error::Tls { peer, error }`](crate::Error::Tls) with a matchable
//!   [`TlsError`](crate::tls::TlsError)`::Certificate(CertError::…)`,
//!   `TlsError::StartTlsRefused`, or `TlsError::Handshake` with a
//!   [`HandshakeFailure`](crate::tls::HandshakeFailure); they count as
//!   connect failures (backoff, breaker), and a certificate error fails
//!   waiting calls at once.
//!   [`Client::tls_peer`](crate::Client::tls_peer) is the server's
//!   certificate on the current link.
//! - **When the server refuses us**, with a fatal TLS alert during the
//!   handshake or (TLS 1.3: the server judges our certificate after our
//!   side of the handshake is done) as the first thing read on the
//!   connection before any reply, the error names the alert and is
//!   definite: `TlsError::Refused { alert }` while connecting (during
//!   HELLO, with identity), or for a call without identity
//!   `Error::Disconnected` with
//!   [`DisconnectCause::TlsRefused`](crate::DisconnectCause::TlsRefused)
//!   and `sent: false` (a server that refuses our certificate fails the
//!   handshake and never reads the calls that followed), as above. It
//!   counts as a connect failure. Against glusterd with a certificate from
//!   another CA:
//!
//!   ```text
//!   connection to 127.0.0.1:24017 lost (the server refused our certificate with the TLS alert unknown_ca: it does not trust the CA that signed our certificate) with the call pending (it did not run: the server read no call before refusing)
//!   ```
//!
//!   An alert after any byte of a reply is an ordinary loss, and a bare
//!   close stays `Closed`: neither claims the server ran nothing.
//! - **RPC-with-TLS (RFC 9289)**: the client sends NULL with credential
//!   flavor `AUTH_TLS` (7) and reads the reply; only `MSG_ACCEPTED` with an
//!   `AUTH_NONE` verifier whose body is `STARTTLS` lets it start TLS on the
//!   same connection. Anything else is `TlsError::StartTlsRefused`: it never
//!   goes on in plain text. A STARTTLS server reads at most 516 bytes, and
//!   nothing past the probe, in plain text. A server without TLS answers the
//!   probe like any NULL call (accepted, an empty verifier, as Linux's
//!   server does without TLS), so it never pretends to upgrade. A capture
//!   (tshark, in `tests/interop.rs`) shows the probe and its reply are
//!   well-formed RPC.
//! - **A plain client meeting a TLS server** (glusterd with management TLS
//!   resets a plain connection after its first record): when the answer
//!   starts like a TLS record, or the peer resets right after our first
//!   record without a reply, the error says the server seems to expect TLS
//!   ([`Error::ExpectsTls`](crate::Error::ExpectsTls) during HELLO,
//!   [`DisconnectCause::ExpectsTls`](crate::DisconnectCause::ExpectsTls) on
//!   a call).
//! - **Renewal and revocation, without a restart.**
//!   `RunningServer::update_tls(ServerTls)` and
//!   `Client::update_tls(ClientTls)` replace the certificate, key, trusted
//!   CAs and revocation lists while traffic runs: the new material is
//!   checked first (an unusable one is an error and the old stays), every
//!   handshake after the call uses it, and established connections go on.
//!   Revocation lists belong to the identity:
//!   `identity.with_crls(RevocationList::load(path)?)?` (PEM or DER, any
//!   number; each must be signed by one of the identity's CAs, or it is
//!   refused naming its file). A revoked certificate is refused at the
//!   handshake: the server sends `certificate_revoked` and records
//!   `CertError::Revoked { serial, cn }`; the client fails with the same
//!   error. A list that arrives by an update closes the live connections of
//!   the certificates it revokes, in both directions
//!   ([`VerdictReason::NoLongerTrusted`](crate::VerdictReason::NoLongerTrusted),
//!   [`DisconnectCause::CertificateRevoked`](crate::DisconnectCause::CertificateRevoked)),
//!   and no other. A certificate whose CA has no list here is not checked,
//!   and `nextUpdate` is not enforced.
//!   [`TlsPeer::serial`](crate::tls::TlsPeer::serial) and `not_after` (and
//!   `TlsIdentity::not_after`) say which certificate a peer presented and
//!   when it expires. `tests/tls_renew.rs`: renewal of both sides under live
//!   traffic fails no call and opens no connection; a CRL update cuts only
//!   the revoked peer.
//! - **Without the feature** (`default-features = false`): no rustls in the
//!   build; [`TlsPeer`](crate::tls::TlsPeer),
//!   [`CertError`](crate::tls::CertError) and the pure rule functions stay,
//!   the `tls` option fields stay, always `None` (their types have no
//!   values), so a struct literal compiles with and without the feature.
//! - TLS applies to TCP. A Unix socket's peer is judged by its credentials
//!   ([`unix`](super::unix)).
