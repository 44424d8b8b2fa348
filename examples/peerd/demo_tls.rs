//! `peerd demo --tls`: the demo's three nodes over mutual TLS.
//!
//! A throwaway CA is made in memory. Each node's certificate has its node
//! ID as the subject CN and its addresses as IP SANs (127.0.0.N, and `::1`
//! for the nodes of the IPv6 link). The impostor sits on node-3's address,
//! as in the plain demo, and holds a certificate that is valid in every
//! way but one: it is node-2's (CN node-2, IP SAN 127.0.0.2), so node-1
//! must refuse it because the address it connects from is not in it.

use std::net::IpAddr;
use std::process::ExitCode;

use crate::demo::{IMPOSTOR_SOURCE, PLANS, Plan, ipv6_loopback_works};
use crate::pki::{Authority, Leaf};
use crate::tls::{PemFile, TlsConfig, TlsMode};

/// The node whose certificate the impostor holds (and whose ID it claims).
pub(crate) const IMPOSTOR_POSES_AS: &str = "node-2";

/// The demo's certificates.
pub(crate) struct DemoPki {
    ca: Authority,
    /// One per [`PLANS`] entry, in order.
    nodes: Vec<Leaf>,
    /// A valid certificate for [`IMPOSTOR_POSES_AS`] and its address.
    impostor: Leaf,
}

/// The IP SANs of a node's certificate: every address it listens on or
/// connects from.
fn addresses(plan: &Plan, with_v6: bool) -> Vec<IpAddr> {
    let mut ips = vec![plan.v4.parse().expect("an IP")];
    if with_v6 && plan.v6 {
        ips.push(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    }
    ips
}

impl DemoPki {
    pub(crate) fn new(with_v6: bool) -> DemoPki {
        let ca = Authority::new("peerd demo CA");
        let nodes = PLANS
            .iter()
            .map(|plan| ca.issue(plan.name, &addresses(plan, with_v6)))
            .collect();
        let posed = PLANS
            .iter()
            .find(|p| p.name == IMPOSTOR_POSES_AS)
            .expect("a demo node");
        let impostor = ca.issue(IMPOSTOR_POSES_AS, &[posed.v4.parse().expect("an IP")]);
        DemoPki {
            ca,
            nodes,
            impostor,
        }
    }

    fn tls(&self, leaf: &Leaf) -> TlsConfig {
        TlsConfig {
            cert: PemFile::in_memory(&leaf.cert_pem),
            key: PemFile::in_memory(&leaf.key_pem),
            ca: PemFile::in_memory(self.ca.ca_pem()),
            crl: Vec::new(),
            mode: TlsMode::Direct,
            expiry_warning: crate::tls::default_expiry_warning(),
        }
    }

    /// The `[tls]` of the node `PLANS[index]`.
    pub(crate) fn node_tls(&self, index: usize) -> TlsConfig {
        self.tls(&self.nodes[index])
    }

    /// The impostor's TLS material.
    pub(crate) fn impostor_tls(&self) -> TlsConfig {
        self.tls(&self.impostor)
    }

    /// The CA's name.
    pub(crate) fn ca_name(&self) -> &str {
        self.ca.name()
    }

    /// One line per certificate, for the demo's preamble.
    pub(crate) fn describe(&self) -> Vec<String> {
        let show = |leaf: &Leaf| {
            let ips: Vec<String> = leaf.ips.iter().map(ToString::to_string).collect();
            format!(
                "CN {}, IP SANs {}",
                leaf.cn.as_deref().unwrap_or("-"),
                ips.join(", ")
            )
        };
        let mut lines: Vec<String> = PLANS
            .iter()
            .zip(&self.nodes)
            .map(|(plan, leaf)| format!("{}: {}", plan.name, show(leaf)))
            .collect();
        lines.push(format!(
            "impostor at {IMPOSTOR_SOURCE}: {}",
            show(&self.impostor)
        ));
        lines
    }
}

/// `peerd demo --tls`.
pub async fn run() -> Result<ExitCode, ExitCode> {
    let pki = DemoPki::new(ipv6_loopback_works());
    crate::demo::run_with(Some(pki)).await
}
