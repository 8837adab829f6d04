//! Seeing the veth pairs of exited containers go, off the caller's path.
//!
//! Deleting a link makes the kernel wait for RCU grace periods (10-25 ms measured here)
//! under the RTNL lock, which every container start needs too. A container's namespace dies
//! with it, and the kernel's cleanup of a dead namespace deletes the veth pairs whose
//! container end is in it, in the same batch as the namespace's `lo` (which every container
//! pays for, networked or not). So the worker does not delete an exited container's link: it
//! watches the host end vanish (`if_nametoindex`, which takes no lock the kernel's cleanup
//! holds) and deletes the link itself only if it is still there after [`GRACE`] (something
//! kept the namespace alive: a `container:` peer, a process that joined it). Until a link is
//! gone its addresses (IPv4, and IPv6 on networks with IPv6) stay in quarantine, so no new
//! container gets an address (and the MAC
//! derived from it) still present on the bridge. A name vanishes while the kernel unregisters
//! the link under the RTNL lock, and the next veth can only be made after that lock is
//! released, when the old port has left the bridge.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::netlink::Netlink;

/// How long a released link may outlive its container before the worker deletes it.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// How often the worker looks for the links it waits for (no RTNL: cheap).
const POLL: Duration = Duration::from_millis(5);

/// One link to see go: (network id, addresses held in quarantine, host-side link name).
type Job = (String, Vec<IpAddr>, String);

enum Msg {
    /// Wait for this link to vanish, delete it after the grace time.
    Watch(Job),
    /// Delete every link still waited for now ([`Reaper::settle`]).
    Hurry,
}

#[derive(Default)]
struct Pending {
    /// (network id, address) of links not yet gone.
    addrs: BTreeSet<(String, IpAddr)>,
}

/// The worker and the quarantine it keeps.
pub(crate) struct Reaper {
    tx: Mutex<Option<Sender<Msg>>>,
    pending: Arc<(Mutex<Pending>, Condvar)>,
}

fn lock(p: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a link named `name` exists in the calling thread's namespace (no RTNL lock).
pub(crate) fn link_exists(name: &str) -> bool {
    crate::netlink::ifindex(name).is_some()
}

/// Deletes `link` (if still there) with `nl`; a restart's repair deletes what fails (the
/// link's alias marks it as barge's).
fn delete(nl: &mut Netlink, link: &str) {
    if let Err(e) = nl.del_link_by_name(link) {
        tracing::warn!("deleting {link}: {e}");
    }
}

/// The worker: watches the links of `rx`'s jobs until they vanish or their grace time is
/// over, and releases their addresses from `pending`.
fn work(
    mut nl: Netlink,
    rx: mpsc::Receiver<Msg>,
    pending: &(Mutex<Pending>, Condvar),
    grace: Duration,
) {
    let mut watched: Vec<(Job, Instant)> = Vec::new();
    let mut open = true;
    while open || !watched.is_empty() {
        let mut hurry = !open;
        let first = if watched.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(POLL)
        };
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Ok(Msg::Watch(job)) => watched.push((job, Instant::now() + grace)),
                Ok(Msg::Hurry) => hurry = true,
                Err(RecvTimeoutError::Timeout) => break,
                // the manager (the only sender) is gone: finish what is left now
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    hurry = true;
                    break;
                }
            }
            next = Some(rx.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            }));
        }
        let now = Instant::now();
        let mut done = Vec::new();
        watched.retain(|((net, ips, link), deadline)| {
            if link_exists(link) {
                if !hurry && now < *deadline {
                    return true;
                }
                tracing::debug!("{link} outlived its container's namespace: deleting it");
                delete(&mut nl, link);
            }
            done.extend(ips.iter().map(|ip| (net.clone(), *ip)));
            false
        });
        if !done.is_empty() || hurry {
            let (m, cv) = pending;
            let mut g = lock(m);
            for d in &done {
                g.addrs.remove(d);
            }
            drop(g);
            cv.notify_all();
        }
    }
}

impl Reaper {
    /// Starts the worker. The calling thread must be in the namespace the links live in:
    /// the worker inherits it.
    pub fn start() -> io::Result<Self> {
        Self::with_grace(GRACE)
    }

    fn with_grace(grace: Duration) -> io::Result<Self> {
        let nl = Netlink::new()?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let pending: Arc<(Mutex<Pending>, Condvar)> = Arc::default();
        let p2 = pending.clone();
        std::thread::Builder::new()
            .name("barge-net-reaper".into())
            .spawn(move || work(nl, rx, &p2, grace))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            pending,
        })
    }

    fn send(&self, m: Msg) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(m).is_ok())
    }

    /// Holds `ips` of network `net` until `link` is gone: the death of the container's
    /// namespace deletes it, or the worker after the grace time. If the worker is gone the
    /// link is deleted here, with `nl`.
    pub fn delete(&self, nl: &mut Netlink, net: &str, ips: &[IpAddr], link: &str) {
        let (m, _) = &*self.pending;
        {
            let mut g = lock(m);
            for ip in ips {
                g.addrs.insert((net.to_string(), *ip));
            }
        }
        if !self.send(Msg::Watch((
            net.to_string(),
            ips.to_vec(),
            link.to_string(),
        ))) {
            delete(nl, link);
            let mut g = lock(m);
            for ip in ips {
                g.addrs.remove(&(net.to_string(), *ip));
            }
        }
    }

    /// Addresses of network `net` whose links are not gone yet.
    pub fn quarantined(&self, net: &str) -> Vec<IpAddr> {
        let (m, _) = &*self.pending;
        lock(m)
            .addrs
            .iter()
            .filter(|(n, _)| n == net)
            .map(|(_, ip)| *ip)
            .collect()
    }

    /// Has the worker delete every link it still waits for and waits until they are gone
    /// (network removal, a static address being reused, tests). Gives up after `limit` (the
    /// worker could be stuck in the kernel): what is left, a restart's repair removes.
    pub fn settle(&self, limit: Duration) {
        let (m, cv) = &*self.pending;
        if lock(m).addrs.is_empty() {
            return;
        }
        self.send(Msg::Hurry);
        let g = lock(m);
        let _ = cv
            .wait_timeout_while(g, limit, |p| !p.addrs.is_empty())
            .map_err(|e| e.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use nix::sched::{unshare, CloneFlags};

    /// In a namespace of its own: a link (a bridge: not every kernel has the dummy driver)
    /// the worker is told about is deleted behind its back: its address leaves quarantine
    /// well before the grace time; another one nobody deletes is deleted by the worker after
    /// the grace time; `settle` deletes at once.
    #[test]
    fn watched_links_vanish_or_are_deleted_after_the_grace_time() {
        std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            let mut nl = Netlink::new().expect("netlink");
            for n in ["rp-a", "rp-b"] {
                nl.add_bridge(n, [2, 0, 0, 0, 0, 1], "t").expect("link");
                assert!(link_exists(n));
            }
            assert!(!link_exists("rp-none"));
            let grace = Duration::from_millis(1000);
            let r = Reaper::with_grace(grace).expect("reaper");
            let (a, b) = (IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 3]));
            let t = Instant::now();
            r.delete(&mut nl, "n", &[a], "rp-a");
            r.delete(&mut nl, "n", &[b], "rp-b");
            assert_eq!(r.quarantined("n"), [a, b]);
            assert!(r.quarantined("other").is_empty());
            std::thread::sleep(Duration::from_millis(50));
            assert!(link_exists("rp-a") && link_exists("rp-b"), "deleted early");
            nl.del_link_by_name("rp-a").expect("delete a");
            let (m, cv) = &*r.pending;
            let g = lock(m);
            let (g, _) = cv
                .wait_timeout_while(g, Duration::from_secs(5), |p| p.addrs.len() > 1)
                .expect("wait");
            drop(g);
            assert!(
                t.elapsed() < grace,
                "a left quarantine after {:?}",
                t.elapsed()
            );
            assert_eq!(r.quarantined("n"), [b]);
            assert!(link_exists("rp-b"));
            let g = lock(m);
            let (g, _) = cv
                .wait_timeout_while(g, Duration::from_secs(10), |p| !p.addrs.is_empty())
                .expect("wait");
            drop(g);
            assert!(t.elapsed() >= grace, "b deleted after {:?}", t.elapsed());
            assert!(!link_exists("rp-b"), "b outlived its grace time");
            assert!(r.quarantined("n").is_empty());
            // settle does not wait for the grace time
            nl.add_bridge("rp-c", [2, 0, 0, 0, 0, 2], "t")
                .expect("link");
            let t = Instant::now();
            // an endpoint with both families: both held, both released
            let a6: IpAddr = "fd00::2".parse().expect("ip");
            r.delete(&mut nl, "n", &[a, a6], "rp-c");
            assert_eq!(r.quarantined("n"), [a, a6]);
            r.settle(Duration::from_secs(10));
            assert!(t.elapsed() < grace, "settle took {:?}", t.elapsed());
            assert!(!link_exists("rp-c"));
            assert!(r.quarantined("n").is_empty());
        })
        .join()
        .expect("test thread");
    }
}
