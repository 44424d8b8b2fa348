//! peerwire's own TLS against the TLS glusterd (see `tls.rs` for how it
//! runs): GF-DUMP over TLS from a bound source with the crate's client and
//! with `peerd gluster-dump`, and the refusals: a certificate without an
//! IP SAN when no CN is configured, a client certificate from another CA,
//! and a plain client.

use std::time::{Duration, Instant};

use peerwire::programs::gf_dump::GfDumpResponse;
use peerwire::tls::{CertError, ClientTls, ServerCheck, TlsAlert, TlsError, TlsIdentity, TlsMode};
use peerwire::{Client, ClientOptions, ConnectOptions, DisconnectCause, Error};

use super::support::pki::LeafFiles;
use super::tls::{GLUSTERD_CN, GLUSTERD_TLS, glusterd_log, glusterd_log_tail, material};
use super::{
    Output, PEERD_GF_DUMP_LINE, PEERD_PEER_LINE, READY_LIMIT, SECOND_V4, assert_connected_from,
    assert_dump_succeeded, assert_lists_glusterd_peer, assert_peerd_printed, block_on,
    call_gf_dump as dump, client_with, peerd,
};

/// A client of the TLS glusterd from [`SECOND_V4`], over TLS with `cert`
/// (or plain without), checking glusterd's certificate by `server`.
fn tls_client(cert: Option<&LeafFiles>, server: ServerCheck) -> Client {
    let tls = cert.map(|cert| ClientTls {
        identity: TlsIdentity::from_pem_files(&cert.cert, &cert.key, &material().ca_file)
            .expect("the trials' certificates load"),
        mode: TlsMode::Direct,
        server,
    });
    let options = ClientOptions {
        connect: ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            ..ConnectOptions::default()
        },
        deadline: Duration::from_secs(10),
        breaker_threshold: 1,
        tls,
        ..ClientOptions::default()
    };
    client_with(SECOND_V4, GLUSTERD_TLS, options)
}

/// Runs `peerd gluster-dump` to the TLS glusterd from [`SECOND_V4`] with
/// the trials' client certificate and CA, `extra` options added.
fn peerd_gluster_dump_over_tls(extra: &[&str]) -> Output {
    let m = material();
    let (cert, key, ca) = (
        m.client_files.cert.display().to_string(),
        m.client_files.key.display().to_string(),
        m.ca_file.display().to_string(),
    );
    let mut args = vec!["gluster-dump", "--cert", &cert, "--key", &key, "--ca", &ca];
    args.extend_from_slice(extra);
    args.extend(["--source", SECOND_V4, GLUSTERD_TLS]);
    peerd(&args)
}

/// The error behind a failed call: the connect error when there is one.
fn cause(error: &Error, client: &Client) -> String {
    match client.last_connect_error() {
        Some(cause) => format!("{cause} (call: {error})"),
        None => error.to_string(),
    }
}

/// Waits until the TLS glusterd answers GF-DUMP over TLS (it accepts
/// before it is ready), with a fresh client per attempt.
async fn wait_until_ready() -> GfDumpResponse {
    let start = Instant::now();
    loop {
        let client = tls_client(
            Some(&material().client_files),
            ServerCheck::Cn(GLUSTERD_CN.into()),
        );
        let result = dump(&client).await;
        match result {
            Ok(dump) => {
                client.close();
                return dump;
            }
            Err(error) => {
                let text = cause(&error, &client);
                client.close();
                assert!(
                    start.elapsed() < READY_LIMIT,
                    "the TLS glusterd did not answer GF-DUMP over TLS within {READY_LIMIT:?}: \
                     {text}\nglusterd's log:\n{}",
                    glusterd_log_tail(20)
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// GF-DUMP DUMP over TLS 1.3 from 127.0.0.2, glusterd's certificate
/// accepted by its CN (it has no SAN): the programs are listed, and the
/// client shows glusterd's certificate.
pub fn client_gf_dump_over_tls_to_glusterd_by_cn() {
    block_on(async {
        wait_until_ready().await;
        let client = tls_client(
            Some(&material().client_files),
            ServerCheck::Cn(GLUSTERD_CN.into()),
        );
        let dump = dump(&client)
            .await
            .unwrap_or_else(|e| panic!("GF-DUMP over TLS failed: {}", cause(&e, &client)));
        assert_dump_succeeded(&dump);
        assert_lists_glusterd_peer(&dump);
        assert_connected_from(&client, SECOND_V4, GLUSTERD_TLS);
        let peer = client.tls_peer().expect("the link runs TLS");
        eprintln!("glusterd's certificate: {peer}");
        assert_eq!(peer.cn.as_deref(), Some(GLUSTERD_CN));
        assert!(peer.ip_sans.is_empty(), "{peer}");
        assert_eq!(peer.version, peerwire::tls::TlsVersion::Tls13);
        client.close();
    });
}

/// The same through `peerd gluster-dump --cert --key --ca --server-cn
/// --source`.
pub fn peerd_gluster_dump_over_tls_to_glusterd() {
    block_on(wait_until_ready());
    let out = peerd_gluster_dump_over_tls(&["--server-cn", GLUSTERD_CN]);
    assert_peerd_printed(&out, &[PEERD_PEER_LINE, PEERD_GF_DUMP_LINE]);
    assert!(
        out.stdout
            .contains(&format!("GF-DUMP of {GLUSTERD_TLS} from {SECOND_V4}:")),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("tls CN \"{GLUSTERD_CN}\"")) && out.stdout.contains("TLSv1.3"),
        "the TLS session is not shown: {out}"
    );
}

/// Without `ServerCheck::Cn` the client requires an IP SAN naming the
/// dialled address, and glusterd's certificate has none: refused with
/// `CertError::NoIpSan` naming its CN, before any call is sent. The same
/// through peerd without `--server-cn`: exit 1, the error says so.
pub fn client_without_server_cn_refuses_glusterds_certificate() {
    block_on(async {
        wait_until_ready().await;
        let client = tls_client(Some(&material().client_files), ServerCheck::DialledIp);
        let error = dump(&client).await.expect_err("no IP SAN: refused");
        let connect = client
            .last_connect_error()
            .unwrap_or_else(|| panic!("no connect error behind {error}"));
        eprintln!("refused: {connect}");
        match &*connect {
            Error::Tls { error, .. } => assert_eq!(
                **error,
                TlsError::Certificate(CertError::NoIpSan {
                    cn: Some(GLUSTERD_CN.into())
                }),
                "{connect}"
            ),
            other => panic!("not a TLS certificate error: {other}"),
        }
        assert!(
            connect.to_string().contains("no IP address SAN"),
            "{connect}"
        );
        assert_eq!(client.stats().succeeded, 0);
        client.close();
    });
    let out = peerd_gluster_dump_over_tls(&[]);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(out.stderr.contains("no IP address SAN"), "{out}");
}

/// A client certificate from a CA glusterd does not know: TLS 1.3 lets
/// the client finish its side of the handshake before glusterd has judged
/// the certificate, so the refusal (an `unknown_ca` alert) arrives on the
/// first read. The call fails at once with a definite refusal naming the
/// alert, reported as not run (glusterd failed the handshake, so it read
/// no call); the client's last connect error is the same refusal; nothing
/// succeeds, and glusterd's log records the failed verification.
pub fn glusterd_refuses_a_client_certificate_from_another_ca() {
    block_on(async {
        wait_until_ready().await;
        let verify_failed = || {
            std::fs::read_to_string(glusterd_log())
                .unwrap_or_default()
                .matches("certificate verify failed")
                .count()
        };
        let before = verify_failed();
        let client = tls_client(
            Some(&material().foreign_files),
            ServerCheck::Cn(GLUSTERD_CN.into()),
        );
        let start = Instant::now();
        let error = dump(&client)
            .await
            .expect_err("glusterd refuses a stranger's certificate");
        eprintln!(
            "refused after {:?}: {}",
            start.elapsed(),
            cause(&error, &client)
        );
        assert!(
            matches!(
                error,
                Error::Disconnected {
                    cause: DisconnectCause::TlsRefused(TlsAlert::UNKNOWN_CA),
                    sent: false,
                    ..
                }
            ),
            "not a refusal by unknown_ca: {error}"
        );
        let text = error.to_string();
        assert!(
            text.contains("the server refused our certificate with the TLS alert unknown_ca")
                && text.contains("did not run")
                && !text.contains("may have run"),
            "{text}"
        );
        let connect = client
            .last_connect_error()
            .expect("the refusal is the last connect error");
        assert!(
            matches!(&*connect, Error::Tls { error, .. }
                if **error == TlsError::Refused { alert: TlsAlert::UNKNOWN_CA }),
            "{connect}"
        );
        assert!(start.elapsed() < Duration::from_secs(5), "not at once");
        assert_eq!(client.stats().succeeded, 0);
        client.close();
        let deadline = Instant::now() + Duration::from_secs(2);
        while verify_failed() == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            verify_failed() > before,
            "glusterd's log does not record the refused certificate:\n{}",
            glusterd_log_tail(10)
        );
    });
}

/// A plain client against the TLS glusterd: glusterd resets the
/// connection after our first record; the error says the server seems to
/// expect TLS.
pub fn plain_client_to_tls_glusterd_is_told_it_expects_tls() {
    block_on(async {
        wait_until_ready().await;
        let client = tls_client(None, ServerCheck::DialledIp);
        let error = dump(&client).await.expect_err("plain text is refused");
        eprintln!("plain client: {error}");
        let connect = client.last_connect_error();
        let expects = matches!(error, Error::ExpectsTls { .. })
            || matches!(
                error,
                Error::Disconnected {
                    cause: DisconnectCause::ExpectsTls,
                    ..
                }
            )
            || connect
                .as_deref()
                .is_some_and(|c| matches!(c, Error::ExpectsTls { .. }));
        assert!(expects, "not an expects-TLS error: {error} ({connect:?})");
        assert!(
            error.to_string().contains("seems to expect TLS")
                || connect
                    .as_deref()
                    .is_some_and(|c| c.to_string().contains("seems to expect TLS")),
            "{error}"
        );
        client.close();
    });
}
