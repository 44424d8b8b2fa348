//! `--mode tls`: a throwaway CA and the two certificates, made once per
//! process (by peerd's CA builder), and the client's and server's TLS options.

use std::net::IpAddr;
use std::sync::OnceLock;

use peerwire::tls::{ClientTls, ServerCheck, ServerTls, TlsIdentity, TlsMode};

// peerd's throwaway CA (shared with its demo and the tests); loadgen uses
// only its node certificates.
#[allow(dead_code)]
#[path = "../peerd/pki.rs"]
mod pki;

struct Pair {
    server: TlsIdentity,
    client: TlsIdentity,
}

fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let ca = pki::Authority::new("loadgen CA");
        let leaf = |cn: &str| {
            let leaf = ca.issue(cn, &[IpAddr::from([127, 0, 0, 1])]);
            TlsIdentity::from_pem(
                leaf.cert_pem.as_bytes(),
                leaf.key_pem.as_bytes(),
                ca.ca_pem().as_bytes(),
            )
            .expect("the CA's own certificates")
        };
        Pair {
            server: leaf("server"),
            client: leaf("loadgen"),
        }
    })
}

fn mode(starttls: bool) -> TlsMode {
    if starttls {
        TlsMode::StartTls
    } else {
        TlsMode::Direct
    }
}

pub fn server(starttls: bool) -> ServerTls {
    ServerTls {
        identity: pair().server.clone(),
        mode: mode(starttls),
    }
}

pub fn client(starttls: bool) -> ClientTls {
    ClientTls {
        identity: pair().client.clone(),
        mode: mode(starttls),
        server: ServerCheck::DialledIp,
    }
}
