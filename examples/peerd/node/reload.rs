//! A reload: a new config applied to the running node, changing only what
//! changed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use peerwire::{Address, Endpoint, RunningServer};
use tracing::{info, warn};

use super::inbound::{admission, server_identity};
use super::link::{LinkSettings, PeerLink};
use super::{Node, OwnCert, unix_ms};
use crate::config::Config;
use crate::status;

impl Node {
    /// Applies a new config to the running node, changing only what
    /// changed: peers whose link settings (ID, dial list, our sources and
    /// timeouts) are the same keep their link and its connection; added
    /// peers are dialled; removed ones closed; the allow lists (the peer
    /// table and admission) take effect at once, closing inbound
    /// connections no longer allowed; `listen` entries added are opened and
    /// those removed closed (the connections they accepted go on), the
    /// others untouched; a changed `[tls]` `cert`, `key`, `ca` or `crl`
    /// (already checked when the config was loaded: every file parses, the
    /// key fits the certificate, its CN is `node_id`, each CRL is signed by
    /// a CA in `ca`) is taken by the listener and every link: new
    /// handshakes use it, live connections go on, except those whose peer
    /// a new CRL revokes. A change of `node_id` or `admin`, of the TLS
    /// mode, or adding or removing `[tls]`, needs a restart: such a config
    /// is refused, and the running one stays. Returns a one-line summary.
    pub fn reload(&mut self, new: &Config) -> Result<String, String> {
        let Some(old) = self.config.clone() else {
            return Err("the node has not dialled its peers yet".into());
        };
        if new.node_id != old.node_id || new.admin != old.admin {
            return Err(
                "node_id and admin cannot change while running; restart peerd to change them"
                    .into(),
            );
        }
        let renewed = match (&old.tls, &new.tls) {
            (old_tls, new_tls) if old_tls == new_tls => None,
            (Some(old_tls), Some(new_tls)) if old_tls.mode == new_tls.mode => {
                let named =
                    |fault: crate::tls::TlsFault| format!("{}: {}", fault.which.name(), fault.text);
                let server = new_tls.server().map_err(named)?;
                let client = new_tls.client().map_err(named)?;
                Some((server, client))
            }
            _ => {
                return Err(
                    "[tls] was added or removed, or its mode changed: that cannot change while \
                     running; restart peerd to apply it (a changed cert, key, ca or crl is \
                     applied live)"
                        .into(),
                );
            }
        };
        if new.unix_mode != old.unix_mode {
            return Err("unix_mode cannot change while running; restart peerd to change it".into());
        }
        let admission = admission(new);
        if let Err(net) = admission.check() {
            return Err(format!("admission network {net} has no IPv4 form"));
        }
        {
            let mut guard = self.shared.server.lock().unwrap();
            let Some(server) = guard.as_mut() else {
                return Err("the node is shutting down".into());
            };
            // TLS first: a refusal changes nothing.
            if let Some((tls, _)) = &renewed {
                server.update_tls(tls.clone()).map_err(|e| e.to_string())?;
                info!(
                    serial = %tls.identity.serial(),
                    crls = tls.identity.crls().len(),
                    "TLS material renewed: new handshakes use it"
                );
                let own = new
                    .tls
                    .as_ref()
                    .and_then(|config| OwnCert::of(&tls.identity, config));
                if let Some(warning) = own.as_ref().and_then(OwnCert::warning) {
                    warn!(node = %new.node_id, "{warning}");
                }
                *self.shared.own_cert.lock().unwrap() = own;
            }
            // Listeners: open the new ones first (a failure changes
            // nothing), then apply the policy, then close the old ones.
            let mut listen = self.shared.listen.lock().unwrap();
            let added: Vec<Endpoint> = new
                .listen
                .iter()
                .filter(|e| !listen.iter().any(|(old, _)| old == *e))
                .cloned()
                .collect();
            let bound = server.listen_also(&added).map_err(|e| e.to_string())?;
            listen.extend(added.into_iter().zip(bound));
            server
                .update(admission, Some(server_identity(new)))
                .map_err(|e| e.to_string())?;
            for (endpoint, bound) in listen.iter() {
                if !new.listen.contains(endpoint) {
                    server.stop_listening(*bound);
                    info!(listen = %status::fmt_addr(*bound), "stopped listening");
                }
            }
            listen.retain(|(endpoint, _)| new.listen.contains(endpoint));
            listen.sort_by_key(|(endpoint, _)| new.listen.iter().position(|e| e == endpoint));
            drop(listen);
            reload_unix(server, &self.shared.listen_unix, &new.listen_unix)?;
        }
        let mut peers = self.shared.peers.lock().unwrap();
        let current = peers.take().unwrap_or_default();
        let (mut kept, mut added) = (0, 0);
        let mut links = Vec::new();
        for peer in &new.peers {
            let settings = LinkSettings::of(new, peer);
            match current.iter().find(|l| l.settings == settings) {
                Some(link) => {
                    kept += 1;
                    if let Some((_, tls)) = &renewed
                        && let Err(error) = link.client.update_tls(tls.clone())
                    {
                        warn!(peer = %link.id, %error, "link kept its TLS material");
                    }
                    links.push(link.clone());
                }
                None => {
                    added += 1;
                    links.push(PeerLink::start(new, peer));
                }
            }
        }
        let mut removed = 0;
        for link in &current {
            if !links.iter().any(|l| Arc::ptr_eq(l, link)) {
                removed += 1;
                link.stop();
            }
        }
        *peers = Some(links);
        drop(peers);
        self.config = Some(new.clone());
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared
            .loaded_ms
            .store(unix_ms(std::time::SystemTime::now()), Ordering::Relaxed);
        let tls = match &renewed {
            Some((tls, _)) => format!(
                "; TLS renewed (certificate serial {}, {} CRLs)",
                tls.identity.serial(),
                tls.identity.crls().len()
            ),
            None => String::new(),
        };
        Ok(format!(
            "config generation {generation}: {kept} peers kept, {added} added or changed, {removed} removed{tls}"
        ))
    }
}

/// Opens the Unix listeners a reload added and closes those it removed.
/// The mode of the new ones is the one the server started with.
fn reload_unix(
    server: &mut RunningServer,
    running: &Mutex<Vec<std::path::PathBuf>>,
    wanted: &[std::path::PathBuf],
) -> Result<(), String> {
    let mut running = running.lock().unwrap();
    let added: Vec<Address> = wanted
        .iter()
        .filter(|p| !running.contains(p))
        .map(|p| Address::Unix(p.clone()))
        .collect();
    server.listen_also_on(&added).map_err(|e| e.to_string())?;
    for path in running.iter() {
        if !wanted.contains(path) {
            server.stop_listening_unix(path);
            info!(listen = %format!("unix:{}", path.display()), "stopped listening");
        }
    }
    *running = wanted.to_vec();
    Ok(())
}
