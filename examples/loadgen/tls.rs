//! `--mode tls`: a throwaway CA and the two certificates, made once per
//! process (rcgen), and the client's and server's TLS options.

use std::sync::OnceLock;

use peerwire::tls::{ClientTls, ServerCheck, ServerTls, TlsIdentity, TlsMode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

struct Pair {
    server: TlsIdentity,
    client: TlsIdentity,
}

fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "loadgen CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |cn: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            TlsIdentity::from_pem(
                cert.pem().as_bytes(),
                key.serialize_pem().as_bytes(),
                ca.pem().as_bytes(),
            )
            .unwrap()
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
