//! Presence: who is in a group, told to the group's members as it changes, on one node or many.
//!
//! # Guarantees
//!
//! - **One source of truth.** Presence is derived from group membership ([`Server::group_members`]),
//!   which a backplane replicates on every node. Every node tells its clients the same members and
//!   inherits the membership's bounds: a join or leave reaches every member within one tick plus the
//!   backplane's latency; the members of a node that stops are gone within its `node_timeout` (Redis); a
//!   node that loses and regains Redis re-reads the others' membership and they re-read its, so nobody
//!   stays listed who is not a member once the link is back (no ghosts).
//! - **Batched.** Every `tick` (100 ms), each group with presence and members on this node is compared
//!   with what this node last told them: clients that joined since get a `$presence_state`, the others one
//!   `$presence_diff` listing every join and leave — N joins in a tick cost each member one frame, not N.
//!   Nothing is sent for a tick in which no membership changed.
//! - **Counts only for big groups.** Above `counts_only_above` members (1 000), frames carry the count
//!   and no members.
//! - **Bounded.** A member's meta is at most `max_meta_bytes` (1 KiB) of JSON, a larger one is listed as
//!   `null`; a diff lists at most `counts_only_above` joins and leaves, past that the members get a new
//!   `$presence_state` instead.
//!
//! # Frames
//!
//! ```text
//! {"type":"$presence_state","data":{"group":"room","count":2,"members":{"<client id>":<meta>,…}}}
//! {"type":"$presence_diff","data":{"group":"room","count":3,"joins":{"<client id>":<meta>},"leaves":{}}}
//! ```
//!
//! In counts-only mode `members`, `joins` and `leaves` are absent. Apply a diff as set operations: a
//! client that just got a state may see its own arrival again in the next diff.
//!
//! # Enabling it
//!
//! ```
//! use serde::Serialize;
//! use ws_core::presence::Presence;
//! use ws_core::{Config, Server};
//!
//! #[derive(Serialize)]
//! struct Meta {
//!     name: String,
//! }
//!
//! let server = Server::builder(Config::default())
//!     .presence(
//!         Presence::new()
//!             .groups(|group| group.starts_with("room:"))
//!             .meta(|client| Meta {
//!                 name: client
//!                     .get_metadata("user")
//!                     .and_then(|u| u.as_str().map(str::to_owned))
//!                     .unwrap_or_default(),
//!             }),
//!     )
//!     .build()?;
//! # let _ = server;
//! # Ok::<(), ws_core::config::ConfigError>(())
//! ```
//!
//! The meta is computed once per connection, right after the authenticator's data is attached. Its
//! TypeScript type comes from `ws_codegen::Codegen::presence`, and the SDK keeps a live list per group
//! (`client.presence("room")`).
//!
//! [`Server::group_members`]: crate::Server::group_members

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::backplane::Backplane;
use crate::client::Client;
use crate::client::id::ClientId;
use crate::group::{GroupFilter, selects};
use crate::member::{Member, PresenceMeta};
use crate::node::{Node, RunState};
use crate::protocol::{Frame, PRESENCE_DIFF_TYPE, PRESENCE_STATE_TYPE};
use crate::sync::lock;

type MetaFn = Arc<dyn Fn(&Client) -> serde_json::Result<String> + Send + Sync>;

/// Presence settings: which groups, what each member shows, how often, from what size counts only.
#[derive(Clone)]
pub struct Presence {
    tick: Duration,
    counts_only_above: usize,
    max_meta_bytes: usize,
    groups: GroupFilter,
    meta: Option<MetaFn>,
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("tick", &self.tick)
            .field("counts_only_above", &self.counts_only_above)
            .field("max_meta_bytes", &self.max_meta_bytes)
            .field("every_group", &self.groups.is_none())
            .finish_non_exhaustive()
    }
}

impl Default for Presence {
    fn default() -> Self {
        Self::new()
    }
}

impl Presence {
    /// Presence on every group, with `null` meta, a 100 ms tick, counts only above 1 000 members, meta
    /// up to 1 KiB.
    pub fn new() -> Self {
        Self {
            tick: Duration::from_millis(100),
            counts_only_above: 1000,
            max_meta_bytes: 1024,
            groups: None,
            meta: None,
        }
    }

    /// Only the groups for which `filter` is true have presence.
    #[must_use]
    pub fn groups(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.groups = Some(Arc::new(filter));
        self
    }

    /// What each member shows the others: computed once per connection from the client (its metadata and
    /// extensions, set by the authenticator).
    #[must_use]
    pub fn meta<M: Serialize>(
        mut self,
        meta: impl Fn(&Client) -> M + Send + Sync + 'static,
    ) -> Self {
        self.meta = Some(Arc::new(move |client| serde_json::to_string(&meta(client))));
        self
    }

    /// How often changes are gathered and sent (100 ms).
    #[must_use]
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Above this many members, frames carry only the count (1 000); it also bounds the entries of a diff.
    #[must_use]
    pub fn counts_only_above(mut self, members: usize) -> Self {
        self.counts_only_above = members;
        self
    }

    /// The largest meta, in bytes of JSON (1 KiB); a larger one is listed as `null`.
    #[must_use]
    pub fn max_meta_bytes(mut self, bytes: usize) -> Self {
        self.max_meta_bytes = bytes;
        self
    }

    fn applies_to(&self, group: &str) -> bool {
        selects(&self.groups, group)
    }
}

/// Meta as it is embedded in frames: JSON text, written as is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MetaJson(Arc<str>);

impl Serialize for MetaJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

fn null() -> MetaJson {
    MetaJson(Arc::from("null"))
}

/// What this node last told the local members of one group.
#[derive(Debug, Default)]
struct Told {
    /// The members and their meta (empty in counts-only mode).
    members: BTreeMap<ClientId, MetaJson>,
    count: usize,
    /// The local clients that were told.
    clients: HashSet<ClientId>,
}

#[derive(Debug, Default)]
struct HubState {
    /// The backplane's membership version at the last tick.
    version: Option<u64>,
    groups: HashMap<String, Told>,
}

/// Presence for one server: its settings, and what it last told each group.
pub(crate) struct PresenceHub {
    config: Presence,
    started: AtomicBool,
    state: Mutex<HubState>,
}

impl fmt::Debug for PresenceHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceHub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct StateData<'a> {
    group: &'a str,
    count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<&'a BTreeMap<ClientId, MetaJson>>,
}

#[derive(Serialize)]
struct DiffData<'a> {
    group: &'a str,
    count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    joins: Option<BTreeMap<&'a ClientId, &'a MetaJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leaves: Option<BTreeMap<&'a ClientId, &'a MetaJson>>,
}

impl PresenceHub {
    pub(crate) fn new(config: Presence) -> Self {
        Self {
            config,
            started: AtomicBool::new(false),
            state: Mutex::new(HubState::default()),
        }
    }

    /// Computes the client's meta and keeps it on the client. A meta past `max_meta_bytes`, one that does
    /// not serialize, or a meta function that panics, gives `null` (and a warning).
    pub(crate) fn attach_meta(&self, client: &Client) {
        let Some(meta) = &self.config.meta else {
            return;
        };
        let text = match std::panic::catch_unwind(AssertUnwindSafe(|| meta(client))) {
            Ok(Ok(text)) if text.len() <= self.config.max_meta_bytes => text,
            Ok(Ok(text)) => {
                tracing::warn!(target: "ws_core::presence", client_id = %client.id(), bytes = text.len(), "presence meta over max_meta_bytes: listed as null");
                "null".to_owned()
            }
            Ok(Err(e)) => {
                tracing::warn!(target: "ws_core::presence", client_id = %client.id(), error = %e, "presence meta does not serialize: listed as null");
                "null".to_owned()
            }
            Err(_) => {
                tracing::warn!(target: "ws_core::presence", client_id = %client.id(), "presence meta function panicked: listed as null");
                "null".to_owned()
            }
        };
        client.insert_extension(PresenceMeta(Arc::from(text)));
    }
}

impl PresenceHub {
    /// What presence does with each client registered: its meta is computed and kept, and the presence
    /// task runs from the first one on.
    pub(crate) fn client_registered(self: &Arc<Self>, client: &Client) {
        self.attach_meta(client);
        self.start(client.server().node());
    }

    /// Starts the presence task once, on the first connection (a server can be built outside a runtime).
    /// The task holds the node and the hub weakly and ends with them, or when the server has stopped.
    fn start(self: &Arc<Self>, node: &Arc<Node>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (hub, node) = (Arc::downgrade(self), Arc::downgrade(node));
        let every = self.config.tick;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let (Some(hub), Some(node)) = (hub.upgrade(), node.upgrade()) else {
                    return;
                };
                if *node.state.borrow() == RunState::Stopped {
                    return;
                }
                if std::panic::catch_unwind(AssertUnwindSafe(|| hub.tick(&node))).is_err() {
                    tracing::error!(target: "ws_core::presence", "presence tick panicked; the next tick starts over");
                    *lock(&hub.state) = HubState::default();
                }
            }
        });
    }
}

/// The meta of a member: this node's clients from their extension, others' from the backplane.
fn meta_of(node: &Node, id: &ClientId) -> MetaJson {
    let local = node
        .clients
        .get(id.as_str())
        .and_then(|c| c.extension::<PresenceMeta>())
        .map(|m| m.0);
    local
        .or_else(|| node.backplane.presence_meta(id))
        .map_or_else(null, MetaJson)
}

fn send_all(clients: &[&Member], frame: &Frame) {
    for client in clients {
        // A client that cannot take it is being dropped as a slow consumer already.
        let _ = client.send(frame.clone());
    }
}

impl PresenceHub {
    /// One round: every group with presence and members on this node, compared with what they were told.
    fn tick(&self, node: &Node) {
        let hub = self;
        let version = node.backplane.membership_version();
        let mut state = lock(&hub.state);
        if version.is_some() && version == state.version {
            return;
        }
        state.version = version;
        let groups: HashSet<String> = node
            .local
            .groups()
            .into_iter()
            .filter(|g| hub.config.applies_to(g))
            .collect();
        state.groups.retain(|g, _| groups.contains(g));
        let limit = hub.config.counts_only_above;
        for group in groups {
            let ids = node.backplane.group_members(&group);
            let local = node.local.local_group_members(&group);
            let told = state.groups.entry(group.clone()).or_default();
            let (known, newcomers): (Vec<&Member>, Vec<&Member>) =
                local.iter().partition(|c| told.clients.contains(c.id()));
            let count = ids.len();
            if count > limit {
                told.members.clear();
                if count != told.count && !known.is_empty() {
                    let diff = DiffData {
                        group: &group,
                        count,
                        joins: None,
                        leaves: None,
                    };
                    send_all(&known, &Frame::envelope(PRESENCE_DIFF_TYPE, &diff));
                }
                if !newcomers.is_empty() {
                    let data = StateData {
                        group: &group,
                        count,
                        members: None,
                    };
                    send_all(&newcomers, &Frame::envelope(PRESENCE_STATE_TYPE, &data));
                }
            } else {
                let current: BTreeMap<ClientId, MetaJson> = ids
                    .into_iter()
                    .map(|id| {
                        let meta = meta_of(node, &id);
                        (id, meta)
                    })
                    .collect();
                tell(&group, count, &current, told, known, newcomers, limit);
                told.members = current;
            }
            told.count = count;
            told.clients = local.iter().map(|c| c.id().clone()).collect();
        }
    }
}

/// Sends one group's diff to the clients told before and its state to the others (all of them when the
/// diff would list more than `limit` changes).
fn tell(
    group: &str,
    count: usize,
    current: &BTreeMap<ClientId, MetaJson>,
    told: &Told,
    known: Vec<&Member>,
    newcomers: Vec<&Member>,
    limit: usize,
) {
    let joins: BTreeMap<&ClientId, &MetaJson> = current
        .iter()
        .filter(|(id, _)| !told.members.contains_key(*id))
        .collect();
    let leaves: BTreeMap<&ClientId, &MetaJson> = told
        .members
        .iter()
        .filter(|(id, _)| !current.contains_key(*id))
        .collect();
    let changed = !joins.is_empty() || !leaves.is_empty() || count != told.count;
    let mut fresh = newcomers;
    if changed && !known.is_empty() {
        if joins.len() + leaves.len() > limit {
            fresh.extend(known);
        } else {
            let diff = DiffData {
                group,
                count,
                joins: Some(joins),
                leaves: Some(leaves),
            };
            send_all(&known, &Frame::envelope(PRESENCE_DIFF_TYPE, &diff));
        }
    }
    if !fresh.is_empty() {
        let data = StateData {
            group,
            count,
            members: Some(current),
        };
        send_all(&fresh, &Frame::envelope(PRESENCE_STATE_TYPE, &data));
    }
}
