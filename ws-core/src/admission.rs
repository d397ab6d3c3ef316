//! Admission: the bounds on how many connections the server holds at once.
//!
//! A WebSocket client holds a [`Slot`] in `max_connections` (and in `max_connections_per_ip` for its
//! address) from the moment its handshake is accepted until its connection ends; a TCP connection that is
//! not a WebSocket client yet holds a [`Handshake`] in `max_handshakes`. Both give their place back when
//! dropped, so no path out of a connection can leak one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// The bounds (0: none) and the counts behind them.
#[derive(Debug)]
pub(crate) struct Admission {
    max_connections: usize,
    max_connections_per_ip: usize,
    max_handshakes: usize,
    /// Connections holding a slot: upgrades in progress and live clients.
    pub(crate) connections: watch::Sender<usize>,
    /// Slots held per peer address, when `max_connections_per_ip` is set; an address leaves the map
    /// with its last connection.
    connections_per_ip: std::sync::Mutex<HashMap<IpAddr, usize>>,
    /// TCP connections accepted by `serve_app` that are not WebSocket clients (yet).
    handshakes: AtomicUsize,
}

impl Admission {
    pub(crate) fn new(
        max_connections: usize,
        max_connections_per_ip: usize,
        max_handshakes: usize,
    ) -> Self {
        Self {
            max_connections,
            max_connections_per_ip,
            max_handshakes,
            connections: watch::Sender::new(0),
            connections_per_ip: std::sync::Mutex::default(),
            handshakes: AtomicUsize::new(0),
        }
    }
}

/// A slot in `max_connections` (and in `max_connections_per_ip` for its address), released when dropped.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

/// Why no [`Slot`] was given.
pub(crate) enum NoSlot {
    Full,
    PerIp,
}

impl Slot {
    pub(crate) fn reserve(
        admission: &Arc<Admission>,
        peer: Option<IpAddr>,
    ) -> Result<Self, NoSlot> {
        let max = admission.max_connections;
        let reserved = admission.connections.send_if_modified(|n| {
            let free = max == 0 || *n < max;
            if free {
                *n += 1;
            }
            free
        });
        if !reserved {
            return Err(NoSlot::Full);
        }
        // Built before the per-address check, so a refusal there gives the global slot back on drop.
        let mut slot = Self {
            admission: admission.clone(),
            ip: None,
        };
        let per_ip = admission.max_connections_per_ip;
        if let Some(ip) = peer.filter(|_| per_ip > 0) {
            let mut counts = crate::sync::lock(&admission.connections_per_ip);
            let count = counts.entry(ip).or_insert(0);
            if *count >= per_ip {
                return Err(NoSlot::PerIp);
            }
            *count += 1;
            slot.ip = Some(ip);
        }
        Ok(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut counts = crate::sync::lock(&self.admission.connections_per_ip);
            if let Some(count) = counts.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
        self.admission.connections.send_modify(|n| *n -= 1);
    }
}

/// One accepted TCP connection that is not a WebSocket client (yet), counted in `max_handshakes`.
pub(crate) struct Handshake(Arc<Admission>);

impl Handshake {
    /// A place for a new TCP connection, or `None` past `max_handshakes`.
    pub(crate) fn begin(admission: &Arc<Admission>) -> Option<Self> {
        let max = admission.max_handshakes;
        let admitted = admission
            .handshakes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| Self(admission.clone()))
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}
