//! What the backplane and its two tasks share, in parts by kind: the outgoing queue, the state of the
//! link, the counters, the replica of the other nodes, history's bookkeeping and the subscriptions.

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::mpsc;

use super::config::RedisConfig;
use super::history::{self, HistoryState};
use super::peers::Peers;
use super::subscriptions::Subscriptions;
use super::wire::{self, Change, Op};
use crate::protocol::Frame;

/// What the tasks and the backplane share.
#[derive(Debug)]
pub(super) struct Shared {
    /// This node's name among its peers.
    pub(super) node: String,
    pub(super) config: RedisConfig,
    /// The replica of the other nodes' clients and groups.
    pub(super) peers: Mutex<Peers>,
    pub(super) outbox: Outbox,
    pub(super) link: LinkState,
    pub(super) counters: Counters,
    pub(super) history: HistoryState,
    pub(super) subscriptions: Subscriptions,
}

/// The publisher's queue and what it holds.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Messages for the publisher, each with its size as counted in `queued_bytes`.
    pub(super) outgoing: mpsc::Sender<(Outgoing, usize)>,
    pub(super) queued_bytes: AtomicUsize,
    /// A membership change could not be queued: the next heartbeat must make the others read it all.
    pub(super) changes_lost: AtomicBool,
}

/// Whether each task is connected to Redis now.
#[derive(Debug)]
pub(super) struct LinkState {
    pub(super) publisher_up: AtomicBool,
    pub(super) subscriber_up: AtomicBool,
    /// The subscriber lost its connection: the publisher's, to the same Redis, counts as down until it has
    /// answered again.
    pub(super) subscriber_lost: tokio::sync::Notify,
    /// The publisher saw a slot served by another master than before (a failover, a migration): the
    /// subscriber reads from the streams what it may have missed while its subscription moved.
    pub(super) slots_moved: tokio::sync::Notify,
    /// The publisher's lanes whose last pipeline failed (a shard out of reach).
    pub(super) lanes_failing: AtomicUsize,
    /// When Redis took the oldest of this node's heartbeats that its subscriber has not heard since: one
    /// unheard for `node_timeout` means the subscriber's link is broken.
    pub(super) beat_unanswered: Mutex<Option<std::time::Instant>>,
}

impl LinkState {
    pub(super) fn connected(&self) -> bool {
        self.publisher_up.load(Relaxed)
            && self.subscriber_up.load(Relaxed)
            && self.lanes_failing.load(Relaxed) == 0
    }
}

/// What `/stats` and the metrics page show of the backplane.
#[derive(Debug)]
pub(super) struct Counters {
    pub(super) published: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) received_bytes: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) task_restarts: AtomicU64,
    pub(super) received_dropped: AtomicU64,
    /// History frames published after `WAIT` ran out before enough replicas had them.
    pub(super) unreplicated: AtomicU64,
    /// From a peer's queueing of a delivery to its application here, by the two nodes' clocks.
    pub(super) lag: Histogram,
}

/// One message waiting for the publisher.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// A frame for the clients of other nodes; `node` is `None` for every node.
    Deliver {
        node: Option<String>,
        op: Op,
        frame: Frame,
        /// When it was queued, in Unix milliseconds: the other nodes measure their lag from it.
        queued_ms: u64,
    },
    /// A frame for a group with history: numbered, kept and published by the history script.
    History {
        group: String,
        except: Vec<String>,
        frame: Frame,
        queued_ms: u64,
    },
    /// A request for one node (a join or leave of one of its clients).
    Request { node: String, op: Op },
    /// An order for every other node (a disconnection).
    Order(Op),
    /// A change of this node's membership.
    Change(Change),
}

impl Outgoing {
    /// What the message counts against `queue_bytes`: the length of its packet on the wire (an upper
    /// bound: the header's number and flags at their longest).
    fn size(&self) -> usize {
        match self {
            Self::Deliver { op, frame, .. } => wire::packet_len(op, Some(frame)),
            Self::History {
                group,
                except,
                frame,
                ..
            } => {
                let op = Op::History {
                    group: group.clone(),
                    except: except.clone(),
                    epoch: String::new(),
                    offset: u64::MAX,
                };
                // The epoch the script adds: 16 hex digits and its quotes.
                wire::packet_len(&op, Some(frame)) + 32
            }
            Self::Request { op, .. } | Self::Order(op) => wire::packet_len(op, None),
            Self::Change(change) => wire::change_len(change),
        }
    }
}

impl Shared {
    pub(super) fn new(
        node: String,
        config: RedisConfig,
        outgoing: mpsc::Sender<(Outgoing, usize)>,
        commands: mpsc::Sender<history::Command>,
    ) -> Self {
        Self {
            history: HistoryState::new(node.clone(), config.clone(), commands),
            node,
            config,
            peers: Mutex::new(Peers::default()),
            outbox: Outbox {
                outgoing,
                queued_bytes: AtomicUsize::new(0),
                changes_lost: AtomicBool::new(false),
            },
            link: LinkState {
                publisher_up: AtomicBool::new(false),
                subscriber_up: AtomicBool::new(false),
                subscriber_lost: tokio::sync::Notify::new(),
                slots_moved: tokio::sync::Notify::new(),
                lanes_failing: AtomicUsize::new(0),
                beat_unanswered: Mutex::new(None),
            },
            counters: Counters {
                published: AtomicU64::new(0),
                received: AtomicU64::new(0),
                received_bytes: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                task_restarts: AtomicU64::new(0),
                received_dropped: AtomicU64::new(0),
                unreplicated: AtomicU64::new(0),
                lag: crate::metrics::latency_histogram(),
            },
            subscriptions: Subscriptions::default(),
        }
    }

    /// Queues a message for the publisher; past either bound it is dropped and counted.
    pub(super) fn enqueue(&self, message: Outgoing) {
        let size = message.size();
        let limit = self.config.queue_bytes;
        let outbox = &self.outbox;
        let before = outbox.queued_bytes.fetch_add(size, Relaxed);
        let is_change = matches!(message, Outgoing::Change(_));
        let refused = before + size > limit || outbox.outgoing.try_send((message, size)).is_err();
        if refused {
            outbox.queued_bytes.fetch_sub(size, Relaxed);
            self.counters.dropped.fetch_add(1, Relaxed);
            if is_change {
                outbox.changes_lost.store(true, Relaxed);
            }
        }
    }
}
