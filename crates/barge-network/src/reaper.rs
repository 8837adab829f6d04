//! Deleting the veth pairs of exited containers off the caller's path.
//!
//! Deleting a link makes the kernel wait for RCU grace periods (10-25 ms measured here),
//! far more than everything else a container's network costs. When a container has exited
//! nobody needs to wait for that: a worker thread deletes its links, and until it has, their
//! addresses stay in quarantine so no new container gets an address (and MAC, derived from
//! it) still present on the bridge.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::netlink::Netlink;

/// One link to delete: (network id, address held in quarantine, host-side link name).
type Job = (String, Ipv4Addr, String);

#[derive(Default)]
struct Pending {
    /// (network id, address) of links not yet deleted.
    addrs: BTreeSet<(String, Ipv4Addr)>,
}

/// The worker and the quarantine it keeps.
pub(crate) struct Reaper {
    tx: Mutex<Option<Sender<Job>>>,
    pending: Arc<(Mutex<Pending>, Condvar)>,
}

fn lock(p: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reaper {
    /// Starts the worker. The calling thread must be in the namespace the links live in:
    /// the worker inherits it.
    pub fn start() -> io::Result<Self> {
        let nl = Netlink::new()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let pending: Arc<(Mutex<Pending>, Condvar)> = Arc::default();
        let p2 = pending.clone();
        std::thread::Builder::new()
            .name("barge-net-reaper".into())
            .spawn(move || {
                let mut nl = nl;
                // ends when the manager (the only sender) is dropped
                for (net, ip, link) in rx {
                    match nl.del_link_by_name(&link) {
                        Ok(_) => {}
                        // a daemon restart's repair deletes what is left (the link's alias
                        // marks it as barge's)
                        Err(e) => tracing::warn!("deleting {link}: {e}"),
                    }
                    let (m, cv) = &*p2;
                    lock(m).addrs.remove(&(net, ip));
                    cv.notify_all();
                }
            })?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            pending,
        })
    }

    /// Queues the deletion of `link` and holds `ip` of network `net` until it is done. If the
    /// worker is gone the link is deleted here, with `nl`.
    pub fn delete(&self, nl: &mut Netlink, net: &str, ip: Ipv4Addr, link: &str) {
        let (m, _) = &*self.pending;
        lock(m).addrs.insert((net.to_string(), ip));
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send((net.to_string(), ip, link.to_string())).is_ok());
        if !sent {
            if let Err(e) = nl.del_link_by_name(link) {
                tracing::warn!("deleting {link}: {e}");
            }
            lock(m).addrs.remove(&(net.to_string(), ip));
        }
    }

    /// Addresses of network `net` whose links are still being deleted.
    pub fn quarantined(&self, net: &str) -> Vec<Ipv4Addr> {
        let (m, _) = &*self.pending;
        lock(m)
            .addrs
            .iter()
            .filter(|(n, _)| n == net)
            .map(|(_, ip)| *ip)
            .collect()
    }

    /// Waits until every queued link is deleted (network removal, tests). Gives up after
    /// `limit` (the worker could be stuck in the kernel): what is left, a restart's repair
    /// removes.
    pub fn settle(&self, limit: Duration) {
        let (m, cv) = &*self.pending;
        let g = lock(m);
        let _ = cv
            .wait_timeout_while(g, limit, |p| !p.addrs.is_empty())
            .map_err(|e| e.into_inner());
    }
}
