use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::histogram::Histogram;

use super::Backplane;
use crate::client::id::ClientId;
use crate::error::{Error, SendError};
use crate::group::GroupRegistry;
use crate::member::Member;
use crate::protocol::Frame;
use crate::registry::ClientRegistry;
use crate::send_queue::Stamp;
use crate::session::policy::Policy;
use crate::session::{Disconnect, Membership, Target};
use crate::stream::StreamOrder;

/// The in-process backplane: this node's clients and groups, delivered from memory.
///
/// Fan-out walks the recipients under a read lock and hands each one a clone of the same frame (a
/// reference-count increment); nothing blocks, because pushing onto a send queue never waits.
#[derive(Clone)]
pub struct MemoryBackplane {
    clients: Arc<ClientRegistry>,
    groups: Arc<GroupRegistry>,
    fanout: Histogram,
    policy: Arc<Policy>,
    /// What this node does with a stream order from another node (its streams, once the server is built).
    stream_orders: Arc<OnceLock<StreamOrders>>,
}

/// Applies a stream order from another node.
pub(crate) type StreamOrders = Arc<dyn Fn(&StreamOrder) + Send + Sync>;

impl std::fmt::Debug for MemoryBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackplane")
            .field("clients", &self.clients)
            .field("groups", &self.groups)
            .field("fanout", &self.fanout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl MemoryBackplane {
    pub(crate) fn new(
        clients: Arc<ClientRegistry>,
        groups: Arc<GroupRegistry>,
        fanout: Histogram,
        policy: Arc<Policy>,
    ) -> Self {
        Self {
            clients,
            groups,
            fanout,
            policy,
            stream_orders: Arc::new(OnceLock::new()),
        }
    }

    /// Applies a stream order another node sent (see [`StreamOrder`]): a backplane of your own calls this
    /// with what [`Backplane::stream_order_elsewhere`] carried.
    pub fn stream_order(&self, order: &StreamOrder) {
        if let Some(apply) = self.stream_orders.get() {
            apply(order);
        }
    }

    /// Where this node's stream orders go: its streams.
    pub(crate) fn on_stream_order(&self, apply: StreamOrders) {
        let _ = self.stream_orders.set(apply);
    }

    /// Applies a disconnection on this node: closes the connections it names, and records the user's
    /// revocation. Returns how many connections it closed.
    pub fn disconnect(&self, order: &Disconnect) -> usize {
        if let (Target::User(user), Some(revocation)) = (&order.target, order.revocation) {
            self.policy.revocations.record(user, revocation);
        }
        let mut closed = 0;
        let mut close = |member: &Member| {
            member.close(order.code, order.reason.clone());
            closed += 1;
        };
        match &order.target {
            Target::Client(id) => {
                if let Some(member) = self.clients.get(id.as_str()) {
                    close(&member);
                }
            }
            Target::User(user) => self.clients.for_each(|member| {
                if member.user() == Some(user.as_str()) {
                    close(member);
                }
            }),
        }
        closed
    }

    /// Whether a credential of `user` issued at `issued_at` is revoked on this node.
    pub(crate) fn revoked(&self, user: &str, issued_at: Option<std::time::SystemTime>) -> bool {
        self.policy.revocations.refuses(user, issued_at)
    }

    /// Whether the application checks joins.
    pub(crate) fn checks_joins(&self) -> bool {
        self.policy.authorize.is_some()
    }

    /// What the application's join check grants `member` in `group`.
    pub(crate) fn authorize(&self, member: &Member, group: &str) -> Result<Membership, Error> {
        self.policy.authorize(member, group)
    }

    /// This node's clients and groups, copied at once: what a distributed backplane stores for the
    /// other nodes to rebuild their replica of this one.
    pub fn membership(&self) -> LocalMembership {
        LocalMembership {
            clients: self.client_ids(),
            groups: self.groups.snapshot(),
        }
    }

    /// The ids of the clients connected to this node, without their groups (which
    /// [`Client::groups`](crate::Client::groups) gives one client at a time).
    pub fn client_ids(&self) -> Vec<ClientId> {
        let mut clients = Vec::new();
        self.clients.for_each(|c| clients.push(c.id().clone()));
        clients
    }

    /// Whether a client with this id is connected to this node.
    pub fn has_client(&self, id: impl AsRef<str>) -> bool {
        self.clients.get(id.as_ref()).is_some()
    }

    /// A client connected to this node: what a distributed backplane hands the frames and requests
    /// other nodes send for it.
    pub fn member(&self, id: impl AsRef<str>) -> Option<Member> {
        self.clients.get(id.as_ref())
    }
}

/// A copy of one node's membership ([`MemoryBackplane::membership`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalMembership {
    /// The clients connected to this node.
    pub clients: Vec<ClientId>,
    /// Each group with members on this node, and those members.
    pub groups: Vec<(String, Vec<ClientId>)>,
}

/// Hands `frame` to `client` unless it is left out; returns whether it was handed.
fn deliver(member: &Member, frame: &Frame, except: &[ClientId], now: Stamp) -> bool {
    if except.contains(member.id()) {
        return false;
    }
    // A failed push has already dropped that client as a slow consumer; the others go on.
    let _ = member.deliver(frame, now);
    true
}

impl MemoryBackplane {
    /// Whether `group` has a member on this node (no list made).
    pub fn has_members(&self, group: &str) -> bool {
        let mut any = false;
        self.groups.for_each_member(group, |_| any = true);
        any
    }

    /// Delivers `frame` to the members of `group` whose id `to` accepts: what a backplane that keeps
    /// history uses to leave out the members it is still replaying to.
    pub fn send_to_group_where(&self, group: &str, frame: &Frame, to: impl Fn(&str) -> bool) {
        let now = Stamp::now();
        let mut reached = 0u32;
        self.groups.for_each_member(group, |c| {
            if to(c.id().as_str()) {
                reached += u32::from(deliver(c, frame, &[], now));
            }
        });
        self.fanout.observe(f64::from(reached));
    }
}

impl Backplane for MemoryBackplane {
    fn broadcast(&self, frame: &Frame, except: &[ClientId]) {
        let now = Stamp::now();
        let mut reached = 0u32;
        self.clients
            .for_each(|c| reached += u32::from(deliver(c, frame, except, now)));
        self.fanout.observe(f64::from(reached));
    }

    fn send_to_group(&self, group: &str, frame: &Frame, except: &[ClientId]) {
        let now = Stamp::now();
        let mut reached = 0u32;
        self.groups.for_each_member(group, |c| {
            reached += u32::from(deliver(c, frame, except, now));
        });
        self.fanout.observe(f64::from(reached));
    }

    fn send_to_client(&self, id: &ClientId, frame: &Frame) -> Result<(), SendError> {
        match self.clients.get(id.as_str()) {
            Some(member) => member.send(frame),
            None => Err(SendError::Disconnected),
        }
    }

    fn join(&self, group: &str, member: &Member) -> Result<bool, Error> {
        let membership = self.authorize(member, group)?;
        let joined = self.groups.join(group, member)?;
        if let Some(session) = member.session() {
            session.set_membership(group, membership.ends_at());
        }
        Ok(joined)
    }

    fn leave(&self, group: &str, id: &ClientId) -> bool {
        if let Some(session) = self
            .clients
            .get(id.as_str())
            .as_ref()
            .and_then(Member::session)
        {
            session.forget_membership(Some(group));
        }
        self.groups.leave(group, id)
    }

    fn leave_all(&self, id: &ClientId) -> Vec<String> {
        if let Some(session) = self
            .clients
            .get(id.as_str())
            .as_ref()
            .and_then(Member::session)
        {
            session.forget_membership(None);
        }
        self.groups.leave_all(id)
    }

    fn is_in_group(&self, group: &str, id: &ClientId) -> bool {
        self.groups.contains(group, id)
    }

    fn client_groups(&self, id: &ClientId) -> Vec<String> {
        self.groups.groups_of(id)
    }

    fn local_group_members(&self, group: &str) -> Vec<Member> {
        self.groups.members(group)
    }

    fn group_members(&self, group: &str) -> Vec<ClientId> {
        self.groups.member_ids(group)
    }

    fn groups(&self) -> Vec<String> {
        self.groups.groups()
    }

    fn group_count(&self) -> usize {
        self.groups.count()
    }

    fn membership_version(&self) -> Option<u64> {
        Some(self.groups.version())
    }
}
