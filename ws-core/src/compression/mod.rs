//! permessage-deflate (RFC 7692): compressed frames with a bounded memory cost.
//!
//! Off by default (as in Socket.IO, gorilla, Centrifugo and Phoenix). Turned on with
//! [`Config::compression`](crate::Config::compression), the server accepts a client's `permessage-deflate`
//! offer (every browser makes one) and then:
//!
//! - **No deflate state lives with a connection.** The server always answers with
//!   `server_no_context_takeover; client_no_context_takeover` (RFC 7692 lets it add the latter to any
//!   offer), so every message is a deflate stream of its own. Compressors belong to the threads that
//!   compress (one per worker thread, ~270 KiB each), decompressors to a small shared pool, taken for the
//!   length of one message: an idle connection with compression on costs what one without costs, plus a
//!   few dozen bytes.
//! - **A frame is compressed once, whatever its recipients.** A broadcast or a group send to compressing
//!   clients compresses the serialized frame the first time one of them gets it and hands every other
//!   the same bytes; so does a frame another node relays through the backplane, once per node. Frames
//!   shorter than [`Compression::min_size`] go uncompressed. The `frames_compressed` counter counts
//!   compressions.
//! - **Inflating is bounded by `max_message_size`.** A compressed message is inflated while it is read,
//!   in steps of 16 KiB handed to the frame parser; the first byte past `max_message_size` closes the
//!   connection with 1009, without inflating the rest: a small frame that inflates to gigabytes (a
//!   decompression bomb) costs no more than an honest message at the limit. A compressed stream that does
//!   not inflate closes it with 1007.
//! - **Send-queue bounds count the bytes queued**: compressed bytes for a compressing client.
//!
//! Per connection, with compression negotiated, the worst case adds one pooled decompressor (~40 KiB,
//! while a compressed message is being read) and up to 16 KiB of inflated bytes waiting for the frame
//! parser, on top of the bounds listed in [`config`](crate::config).
//!
//! A client may ask the server to compress with a smaller window (`server_max_window_bits` 9 to 14, which
//! no browser does): its frames are compressed for it alone. An offer asking for 8 bits, which zlib cannot
//! produce, is declined (the client's next offer is tried).

pub(crate) mod deflate;
pub(crate) mod inflate;
pub(crate) mod negotiate;

/// Whether and how the server compresses: a [`Config`](crate::Config) setting.
///
/// ```
/// use ws_core::Config;
/// use ws_core::compression::Compression;
///
/// let config = Config::default().compression(Compression::deflate().min_size(512));
/// assert!(config.compression.is_enabled());
/// assert_eq!(Config::default().compression, Compression::off());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    enabled: bool,
    min_size: usize,
    level: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Self::off()
    }
}

impl Compression {
    /// No compression: offers are declined, frames go as they are. The default.
    pub const fn off() -> Self {
        Self {
            enabled: false,
            min_size: 256,
            level: 3,
        }
    }

    /// permessage-deflate, accepted whenever a client offers it: level 3, frames from 256 bytes.
    pub const fn deflate() -> Self {
        Self {
            enabled: true,
            ..Self::off()
        }
    }

    /// Frames shorter than `bytes` go uncompressed: a short JSON frame shrinks by a few bytes at the price
    /// of a compression. Default 256.
    #[must_use]
    pub const fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// The deflate level, 1 to 9. Default 3: a 1 KiB chat line shrinks to 0.39 of its size in ~15 µs,
    /// where level 1 (static Huffman codes only) leaves 0.52 in half the time and 6 to 9 gain under 1%.
    /// A broadcast is compressed once, so the level costs per frame sent, not per recipient.
    #[must_use]
    pub const fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Whether the server accepts permessage-deflate.
    pub const fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// See [`min_size`](Self::min_size).
    pub const fn get_min_size(&self) -> usize {
        self.min_size
    }

    /// See [`level`](Self::level).
    pub const fn get_level(&self) -> u32 {
        self.level
    }
}
