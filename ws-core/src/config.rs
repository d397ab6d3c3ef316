//! Server configuration: every limit, its default, and what happens when a client reaches it.
//!
//! | field | default | at the limit |
//! |---|---|---|
//! | `max_connections` | 10 000 (0 = unlimited) | HTTP 503 before the upgrade |
//! | `max_connections_per_ip` | 0 (no limit) | HTTP 429 before the upgrade |
//! | `max_handshakes` | 1 024 (0 = unlimited) | a new TCP connection is answered 503 and closed at once |
//! | `allowed_hosts` | empty (any `Host`) | HTTP 403 before the upgrade |
//! | `max_message_size` | 512 KiB | close 1009 |
//! | `message_rate_limit` / `message_burst_size` | 100/s, burst 200 (rate 0 = off) | close 1008 "rate limit exceeded" |
//! | `send_queue_max_bytes` / `send_queue_max_lag` | 1 MiB waiting / 5 s of its socket refusing writes | the client is dropped as a slow consumer (close 1008, best effort) |
//! | `send_queue_volatile_bytes` | 64 KiB | volatile messages to that client are skipped while its queue holds more |
//! | `inbound_queue_capacity` / `inbound_queue_max_bytes` | 256 frames / 256 KiB waiting for their handler | the frame is refused: a request gets `$error` `overloaded`, another frame an `$error` `overloaded` without `id` (raw mode: close 1008) |
//! | `ping_interval` / `pong_timeout` | 30 s / 60 s | connection closed, `on_disconnect` runs |
//! | `write_timeout` | 10 s | connection closed |
//! | `handshake_timeout` | 10 s | the HTTP connection is dropped (slow request headers, or an upgrade never completed); an authenticator still running gets the request answered 503 |
//! | `message_timeout` | 30 s | a message not complete this long after its first byte (a trickled frame, a fragmented message without its last fragment): close 1008 |
//! | `hook_timeout` | 10 s | an `on_connect` or `on_disconnect` hook still running is dropped and reported to `on_error` |
//! | `close_timeout` | 5 s | after a close frame, input is discarded this long at most while waiting for the peer's close; a reply to the peer's close not written by then is given up |
//! | `shutdown_timeout` | 10 s | [`Server::stop`](crate::Server::stop) aborts whoever has not closed by then |
//! | `max_groups_per_client` | 256 | `join_group` fails with `limit_exceeded` |
//! | `max_group_name_bytes` | 256 | `join_group` fails with `limit_exceeded` (so one client's group names hold 64 KiB at most) |
//! | `max_pending_requests` | 64 | `Client::request` fails with `limit_exceeded` |
//! | `max_metadata_bytes` | 64 KiB | `Client::set_metadata` fails with `limit_exceeded`; metadata from the authenticator past it: HTTP 500 |
//! | `session_grace` | 10 s | a connection past its credential's expiry without a refresh is closed with 4001 "token expired" (see [`session`](crate::session)) |
//! | `max_revoked_users` | 100 000 | the revocation that ends first is forgotten early |
//! | `max_streams_per_client` / `max_streams` | 16 / 10 000 | a stream request gets `$error` `limit_exceeded` (per client) or `overloaded` (the node) |
//! | `stream_window_bytes` | 64 KiB | a stream's producer waits while its reader's send queue holds more (see [`stream`](crate::stream)) |
//! | `stream_kept_chunks` / `stream_kept_bytes` | 1 000 / 256 KiB per stream | the oldest chunk kept for a resume is dropped (a resume from before it: `$error` `expired`); with no reader, the producer waits instead |
//! | `stream_resume_timeout` | 30 s | a stream without a reader that long is cancelled; an ended one is forgotten that long after its end |
//! | `compression` | off | with permessage-deflate on: a compressed message inflating past `max_message_size` closes 1009 (inflating stops there), one that does not inflate 1007 |
//!
//! # Memory a client can hold
//!
//! Outbound, a client's send queue holds at most `send_queue_max_bytes`, counting each frame's length
//! plus 64 bytes for its slot (or one frame larger than that, alone); with the defaults, 1 MiB ×
//! `max_connections` (10 000) = 10 GiB in the worst case, where every client is behind by the whole bound
//! with frames of its own. Broadcast frames are shared between the queues that hold them, so a fan-out
//! backlog costs the slots, not a copy of each frame per client. Inbound, frames waiting for their handler
//! hold at most `inbound_queue_max_bytes` plus the frame being handled (`max_message_size`): 768 KiB per
//! client with the defaults, 7.5 GiB for `max_connections` clients. An idle client holds neither: both
//! queues allocate on first use and give their buffers back once drained.
//!
//! # A burst, and a client that stopped reading
//!
//! A client is dropped for what it does, not for what the server does: how long frames have waited in
//! its queue is no bound, since a server short of CPU makes every queue wait at once, and dropping its
//! clients for that would turn a latency spike into a reconnect storm. A client that falls behind during
//! a burst, or while the server is busy, is never dropped while its queue holds less than
//! `send_queue_max_bytes` and its socket has not refused the server's writes for `send_queue_max_lag`
//! straight (counted from a write the kernel could not take, and started again whenever it takes bytes).
//! A client that stops reading is dropped at the first of: its queue passing `send_queue_max_bytes`; a
//! frame queued for it once its socket has taken nothing for `send_queue_max_lag` (frames first fill the
//! kernel's socket buffers, up to 4 MiB on Linux, then wait in the queue); a write blocked for
//! `write_timeout`; or `ping_interval` + `pong_timeout` without a pong. A server so far behind that a
//! client that reads everything has `send_queue_max_bytes` waiting for it drops that client too: the
//! byte bound is the hard cap on what one client makes the server hold, whatever the reason.
//!
//! [`Config::validate`] rejects combinations that cannot work; [`ServerBuilder::build`](crate::ServerBuilder::build)
//! calls it, so a bad config fails at start-up, never under load.

use std::time::Duration;

use crate::compression::Compression;

/// Settings of a [`Server`](crate::Server). Start from `Config::default()` and chain a setter per
/// field (each named after its field); the fields stay readable, and writable through a `mut` binding.
/// New settings arrive as new fields with defaults, so the struct is `#[non_exhaustive]`.
///
/// ```
/// use std::time::Duration;
/// use ws_core::Config;
///
/// let config = Config::default()
///     .port(0)
///     .message_rate_limit(50)
///     .message_burst_size(100)
///     .ping_interval(Duration::from_secs(15));
/// assert!(config.validate().is_ok());
/// assert_eq!(config.message_rate_limit, 50);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address [`Server::serve`](crate::Server::serve) binds. Default `127.0.0.1`.
    pub host: String,
    /// Port [`Server::serve`](crate::Server::serve) binds; 0 picks a free one. Default 6001.
    pub port: u16,
    /// Route of the WebSocket endpoint in [`Server::router`](crate::Server::router). Default `/ws`.
    pub path: String,
    /// Origins allowed to connect. Empty: same origin only, and requests without `Origin` (non-browser
    /// clients) are allowed. `"*"` allows every origin. Entries are compared with the `Origin` header
    /// case-insensitively, e.g. `https://example.com`.
    pub allowed_origins: Vec<String>,
    /// Host names a request may address (its `Host` header, port ignored). Empty, the default: any. A
    /// server reachable on loopback or a private network should list its names: with the same-origin
    /// default, a page on an attacker's domain that resolves to the server's address (DNS rebinding) is
    /// "same origin", and only the host check refuses it (403). `".example.com"` allows every subdomain.
    pub allowed_hosts: Vec<String>,
    /// Most clients at once, counting upgrades in progress; 0 means no limit. Default 10 000.
    pub max_connections: usize,
    /// Most clients at once from one IP address, counting upgrades in progress; past it the upgrade is
    /// answered 429. 0, the default, means no limit: behind a reverse proxy every client has the proxy's
    /// address. Applies where the peer address is known: behind [`Server::serve`](crate::Server::serve) and
    /// [`Server::serve_app`](crate::Server::serve_app), or an app served with axum's `ConnectInfo`.
    pub max_connections_per_ip: usize,
    /// Most TCP connections accepted by [`Server::serve`](crate::Server::serve) and
    /// [`Server::serve_app`](crate::Server::serve_app) that are not (yet) WebSocket clients: reading their
    /// request head, in the authenticator, or plain HTTP requests of the app. Past it, a new connection is
    /// answered 503 and closed at once, so slow or idle HTTP connections cannot use up the process's file
    /// descriptors. 0 means no limit. Default 1 024.
    pub max_handshakes: usize,
    /// Read buffer per connection in bytes. Default 1 KiB, as in the original Go package: it is allocated
    /// for every connection, idle or not (tungstenite's own default, 128 KiB, would cost that much per idle
    /// socket). A frame larger than the buffer is still read whole, in several reads; raise it for clients
    /// that send large messages in bursts.
    pub read_buffer_size: usize,
    /// The buffer a connection's write task keeps between two writes, for the frame headers and small
    /// frames of a batch (larger payloads are written from their shared bytes, not copied). Default
    /// 16 KiB: a batch that needs more has it while it is written, and the excess is freed after.
    pub write_buffer_size: usize,
    /// Unsent bytes the kernel may hold for one client's socket (`TCP_NOTSENT_LOWAT`, on Linux, for
    /// sockets accepted by [`Server::serve`](crate::Server::serve) and
    /// [`Server::serve_app`](crate::Server::serve_app)). Past it, frames wait in the client's send queue,
    /// where the delivery policies and the lag bound apply to them, instead of in the kernel, where
    /// nothing can skip or replace them and a client that stopped reading hides megabytes. The price: a
    /// client that cannot keep up reaches the send queue's bounds sooner, instead of after the kernel's
    /// send buffer (up to 4 MiB on Linux) has filled. 16 KiB is a common choice. Default 0: the kernel's
    /// own limit.
    pub socket_unsent_bytes: usize,
    /// Largest message accepted from a client, in bytes. Default 512 KiB.
    pub max_message_size: usize,
    /// How often the server pings each client. Default 30 s.
    pub ping_interval: Duration,
    /// How long a client may go without answering a ping. Default 60 s.
    pub pong_timeout: Duration,
    /// How long one write to a client's socket may block. Default 10 s.
    pub write_timeout: Duration,
    /// How long a connection's write task waits, once frames are queued for it, to gather more before it
    /// writes. Each write to a socket costs the server a system call, several microseconds on a loopback
    /// or cloud host, whether it carries one frame or sixty-four: a client sent many messages a second
    /// costs a fraction of that when they go out together. The price is latency: every frame, replies
    /// included, may wait this long. Default 0: frames are written as soon as the write task runs, which
    /// sends everything queued meanwhile in one write. A few milliseconds suit feeds sending hundreds of
    /// messages a second to each client (BENCHMARKS.md measures 5 and 20 ms). What waits counts against
    /// `send_queue_max_bytes` like any queued frame, so keep the delay well below what fills it.
    pub write_delay: Duration,
    /// Messages per second a client may send; 0 disables rate limiting. Default 100.
    pub message_rate_limit: u32,
    /// Messages a client may send at once above the rate. Default 200.
    pub message_burst_size: u32,
    /// Bytes waiting to be written to one client, each frame counting its length plus 64 bytes; past it
    /// the client is dropped as a slow consumer. Default 1 MiB.
    pub send_queue_max_bytes: usize,
    /// How long one client's socket may refuse the server's writes (the kernel taking none of the bytes
    /// offered, since the client does not read) before a frame sent to it drops it as a slow consumer.
    /// Frames that wait because the server is busy do not count. Default 5 s.
    pub send_queue_max_lag: Duration,
    /// Bytes waiting for one client past which `volatile` messages to it are skipped. Default 64 KiB.
    pub send_queue_volatile_bytes: usize,
    /// Frames of one client waiting for their handler while an earlier one runs. Default 256.
    pub inbound_queue_capacity: usize,
    /// Bytes of one client's frames waiting for their handler. Default 256 KiB.
    pub inbound_queue_max_bytes: usize,
    /// Time allowed for the HTTP request head, for the authenticator (past it: 503), and for the
    /// upgrade. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time allowed for one message, from its first byte to its last, however many frames it is sent in;
    /// past it the connection is closed with 1008. Without it a client could hold an incomplete message
    /// of up to `max_message_size` for ever. Default 30 s.
    pub message_timeout: Duration,
    /// Time one `on_connect` or `on_disconnect` hook may run; past it the hook is dropped and
    /// `on_error` is told, so a hung hook cannot keep a client's slot and groups. Default 10 s.
    pub hook_timeout: Duration,
    /// Time the server waits for the peer's close frame after sending its own, and the longest its reply
    /// to a peer's close may take to be written. Default 5 s.
    pub close_timeout: Duration,
    /// Time [`Server::stop`](crate::Server::stop) lets clients drain and close. Default 10 s.
    pub shutdown_timeout: Duration,
    /// Groups one client may belong to at once. Default 256.
    pub max_groups_per_client: usize,
    /// Longest group name [`Client::join`](crate::Client::join) accepts, in bytes. Default 256: with
    /// `max_groups_per_client`, one client's group names hold 64 KiB at most.
    pub max_group_name_bytes: usize,
    /// Requests the server may have waiting for one client's answer ([`Client::request`](crate::Client::request)).
    /// Default 64.
    pub max_pending_requests: usize,
    /// Bytes one client's metadata may hold: each key's length plus its value's JSON length. Default
    /// 64 KiB.
    pub max_metadata_bytes: usize,
    /// How long past its expiry a connection may still refresh its session before it is closed with
    /// 4001 (see [`session`](crate::session)); zero closes it at the expiry. Default 10 s.
    pub session_grace: Duration,
    /// Revoked users one node remembers ([`Server::revoke_user`](crate::Server::revoke_user)); past it,
    /// the revocation that ends first is forgotten early. Default 100 000.
    pub max_revoked_users: usize,
    /// Streams one client may read at once ([`stream`](crate::stream)). Default 16.
    pub max_streams_per_client: usize,
    /// Streams one node keeps at once, running or ended but still resumable. Default 10 000.
    pub max_streams: usize,
    /// Bytes a stream's reader may have waiting in its send queue before the producer's next
    /// [`Chunks::send`](crate::stream::Chunks::send) waits. Default 64 KiB.
    pub stream_window_bytes: usize,
    /// Chunks a stream keeps for a reader that resumes after a lost connection. Default 1 000.
    pub stream_kept_chunks: usize,
    /// Bytes of item JSON a stream keeps for a resume. Default 256 KiB.
    pub stream_kept_bytes: usize,
    /// How long a stream waits for its reader to resume before it is cancelled, and how long an ended
    /// stream stays resumable. Default 30 s.
    pub stream_resume_timeout: Duration,
    /// permessage-deflate: off by default; see [`compression`](crate::compression) for what turning it
    /// on costs and guarantees.
    pub compression: Compression,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 6001,
            path: "/ws".to_owned(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: 10_000,
            max_connections_per_ip: 0,
            max_handshakes: 1024,
            read_buffer_size: 1024,
            write_buffer_size: 16 * 1024,
            socket_unsent_bytes: 0,
            max_message_size: 512 * 1024,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            write_delay: Duration::ZERO,
            message_rate_limit: 100,
            message_burst_size: 200,
            send_queue_max_bytes: 1024 * 1024,
            send_queue_max_lag: Duration::from_secs(5),
            send_queue_volatile_bytes: 64 * 1024,
            inbound_queue_capacity: 256,
            inbound_queue_max_bytes: 256 * 1024,
            handshake_timeout: Duration::from_secs(10),
            message_timeout: Duration::from_secs(30),
            hook_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            max_groups_per_client: 256,
            max_group_name_bytes: 256,
            max_pending_requests: 64,
            max_metadata_bytes: 64 * 1024,
            session_grace: Duration::from_secs(10),
            max_revoked_users: 100_000,
            max_streams_per_client: 16,
            max_streams: 10_000,
            stream_window_bytes: 64 * 1024,
            stream_kept_chunks: 1000,
            stream_kept_bytes: 256 * 1024,
            stream_resume_timeout: Duration::from_secs(30),
            compression: Compression::off(),
        }
    }
}

/// One chainable setter per field, named after it, documented by the field.
macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        impl Config {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Config::", stringify!($field), ").")]
                #[must_use]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    port: u16,
    max_connections: usize,
    max_connections_per_ip: usize,
    max_handshakes: usize,
    read_buffer_size: usize,
    write_buffer_size: usize,
    socket_unsent_bytes: usize,
    max_message_size: usize,
    ping_interval: Duration,
    pong_timeout: Duration,
    write_timeout: Duration,
    write_delay: Duration,
    message_rate_limit: u32,
    message_burst_size: u32,
    send_queue_max_bytes: usize,
    send_queue_max_lag: Duration,
    send_queue_volatile_bytes: usize,
    inbound_queue_capacity: usize,
    inbound_queue_max_bytes: usize,
    handshake_timeout: Duration,
    message_timeout: Duration,
    hook_timeout: Duration,
    close_timeout: Duration,
    shutdown_timeout: Duration,
    max_groups_per_client: usize,
    max_group_name_bytes: usize,
    max_pending_requests: usize,
    max_metadata_bytes: usize,
    session_grace: Duration,
    max_revoked_users: usize,
    max_streams_per_client: usize,
    max_streams: usize,
    stream_window_bytes: usize,
    stream_kept_chunks: usize,
    stream_kept_bytes: usize,
    stream_resume_timeout: Duration,
    compression: Compression,
}

impl Config {
    /// Sets [`host`](Config::host).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets [`path`](Config::path).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets [`allowed_origins`](Config::allowed_origins).
    ///
    /// ```
    /// let config = ws_core::Config::default().allowed_origins(["https://example.com"]);
    /// assert_eq!(config.allowed_origins, ["https://example.com"]);
    /// ```
    #[must_use]
    pub fn allowed_origins<S: Into<String>>(
        mut self,
        origins: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`allowed_hosts`](Config::allowed_hosts).
    ///
    /// ```
    /// let config = ws_core::Config::default().allowed_hosts(["localhost", "127.0.0.1"]);
    /// assert_eq!(config.allowed_hosts, ["localhost", "127.0.0.1"]);
    /// ```
    #[must_use]
    pub fn allowed_hosts<S: Into<String>>(mut self, hosts: impl IntoIterator<Item = S>) -> Self {
        self.allowed_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }
}

/// Why a [`Config`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A size, count or duration that must be positive is zero.
    #[error("`{0}` must be greater than zero")]
    Zero(&'static str),
    /// `message_burst_size` is below 1 while a rate limit is set: no message could ever pass.
    #[error("`message_burst_size` must be at least 1 when `message_rate_limit` is set")]
    BurstTooSmall,
    /// The compression level is outside 1–9.
    #[error("the compression level must be 1 to 9, not {0}")]
    CompressionLevel(u32),
    /// `path` does not start with `/`.
    #[error("`path` must start with '/', got {0:?}")]
    Path(String),
    /// History with a backplane that cannot keep it for every node
    /// ([`Backplane::keep_history`](crate::backplane::Backplane::keep_history)).
    #[error("this backplane cannot keep history for every node (the Redis backplane can)")]
    HistoryUnsupported,
    /// A backplane's address cannot be parsed.
    #[error("backplane url {url:?}: {reason}")]
    BackplaneUrl {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Config {
    /// Checks that the settings can work together.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the first field that is wrong.
    ///
    /// ```
    /// use ws_core::Config;
    /// use ws_core::config::ConfigError;
    ///
    /// let config = Config::default().message_burst_size(0);
    /// assert_eq!(config.validate(), Err(ConfigError::BurstTooSmall));
    ///
    /// let config = Config::default().send_queue_max_bytes(0);
    /// assert_eq!(config.validate(), Err(ConfigError::Zero("send_queue_max_bytes")));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sizes = [
            ("read_buffer_size", self.read_buffer_size),
            ("max_message_size", self.max_message_size),
            ("send_queue_max_bytes", self.send_queue_max_bytes),
            ("inbound_queue_capacity", self.inbound_queue_capacity),
            ("inbound_queue_max_bytes", self.inbound_queue_max_bytes),
            ("max_groups_per_client", self.max_groups_per_client),
            ("max_group_name_bytes", self.max_group_name_bytes),
            ("max_pending_requests", self.max_pending_requests),
            ("max_metadata_bytes", self.max_metadata_bytes),
            ("max_revoked_users", self.max_revoked_users),
            ("max_streams_per_client", self.max_streams_per_client),
            ("max_streams", self.max_streams),
            ("stream_window_bytes", self.stream_window_bytes),
            ("stream_kept_chunks", self.stream_kept_chunks),
            ("stream_kept_bytes", self.stream_kept_bytes),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero(name));
        }
        let durations = [
            ("ping_interval", self.ping_interval),
            ("pong_timeout", self.pong_timeout),
            ("write_timeout", self.write_timeout),
            ("send_queue_max_lag", self.send_queue_max_lag),
            ("handshake_timeout", self.handshake_timeout),
            ("message_timeout", self.message_timeout),
            ("hook_timeout", self.hook_timeout),
            ("close_timeout", self.close_timeout),
            ("stream_resume_timeout", self.stream_resume_timeout),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, v)| v.is_zero()) {
            return Err(ConfigError::Zero(name));
        }
        if self.message_rate_limit > 0 && self.message_burst_size < 1 {
            return Err(ConfigError::BurstTooSmall);
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::Path(self.path.clone()));
        }
        if !(1..=9).contains(&self.compression.get_level()) {
            return Err(ConfigError::CompressionLevel(self.compression.get_level()));
        }
        Ok(())
    }
}
