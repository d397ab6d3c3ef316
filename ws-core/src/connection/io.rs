//! The upgraded socket's read side as a connection sees it: the bytes read are counted, and the client's
//! frame headers are followed as they pass, without copying or buffering anything. The write side is the
//! write task's alone ([`SocketWriter`]); what the protocol layer writes on its own (pongs, the reply to a
//! close) is handed to it through [`Replies`].
//!
//! Following the headers gives two guarantees the protocol layer does not:
//!
//! - **A message arrives within `message_timeout` of its first byte.** The protocol layer holds an
//!   incomplete message (and reserves the length a frame header announces) for as long as the peer takes:
//!   a peer that trickles bytes, or sends the first fragments of a message and never its last one while
//!   answering pings, would hold up to `max_message_size` for ever. Past the deadline the read fails with
//!   [`MessageTimeout`] and the reader closes the connection with 1008.
//! - **A client that stops reading is told from a server that is behind.** Each write the kernel refuses
//!   (its buffers for the peer are full) and each one it takes are reported to the client's send queue
//!   ([`WriteStall`](crate::send_queue::WriteStall), by the [`SocketWriter`]), which drops the client once
//!   its socket has taken nothing for `send_queue_max_lag`.
//! - **Every frame can take a rate-limit token.** The protocol layer hands a fragmented message over as
//!   one; the continuation frames it was made of are counted here ([`FrameCounter`]) so the reader
//!   charges them too.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::{Instant, Sleep};

use super::outgoing::{Replies, SocketWriter, WriteHalf};
use crate::compression::inflate::Inflater;
use crate::node::Node;
use crate::stats::Stats;

/// The error a read fails with once a message has taken longer than `message_timeout` to arrive.
#[derive(Debug)]
pub(crate) struct MessageTimeout;

impl std::fmt::Display for MessageTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("message not completed within message_timeout")
    }
}

impl std::error::Error for MessageTimeout {}

impl MessageTimeout {
    /// Whether `err` is this timeout.
    pub(crate) fn is(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<Self>())
    }
}

/// Continuation frames received and not yet charged to the rate limit, shared with the reader.
pub(crate) type FrameCounter = Arc<AtomicU32>;

/// Where the client's byte stream stands in its framing.
#[derive(Debug)]
struct FrameTracker {
    /// Header bytes of the frame being read, while its header is incomplete.
    header: [u8; 14],
    header_len: u8,
    /// Payload bytes of the current frame still to come, once its header is complete.
    payload_left: Option<u64>,
    /// Opcode and FIN bit of the current frame.
    opcode: u8,
    fin: bool,
    /// Between the first and the last fragment of a message.
    fragmented: bool,
    /// When the first byte of the incomplete frame or message arrived; `None` at a message boundary.
    started: Option<Instant>,
    /// Armed only while the socket has nothing more to read and a message is incomplete.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Set once the timeout fired: the rest of the stream is drained without a deadline.
    expired: bool,
    continuations: FrameCounter,
}

impl FrameTracker {
    fn new() -> Self {
        Self {
            header: [0; 14],
            header_len: 0,
            payload_left: None,
            opcode: 0,
            fin: false,
            fragmented: false,
            started: None,
            deadline: None,
            expired: false,
            continuations: FrameCounter::default(),
        }
    }

    /// Follows `data`, the next bytes of the stream.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if let Some(left) = self.payload_left {
                let n = left.min(data.len() as u64);
                data = &data[usize::try_from(n).unwrap_or(data.len())..];
                self.payload_left = Some(left - n);
                if left == n {
                    self.frame_done();
                }
                continue;
            }
            if self.header_len == 0 && self.started.is_none() {
                self.started = Some(Instant::now());
            }
            let want = self.header_needed();
            let have = usize::from(self.header_len);
            let n = (want - have).min(data.len());
            self.header[have..have + n].copy_from_slice(&data[..n]);
            self.header_len += n as u8;
            data = &data[n..];
            if usize::from(self.header_len) == self.header_needed() && self.header_len >= 2 {
                self.header_done();
            }
        }
    }

    /// Bytes of the current header, as far as its first two bytes tell.
    fn header_needed(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let extended = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn header_done(&mut self) {
        let h = &self.header;
        self.fin = h[0] & 0x80 != 0;
        self.opcode = h[0] & 0x0f;
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            short => u64::from(short),
        };
        self.header_len = 0;
        self.payload_left = Some(len);
        if len == 0 {
            self.frame_done();
        }
    }

    fn frame_done(&mut self) {
        self.payload_left = None;
        match self.opcode {
            0 => {
                self.continuations.fetch_add(1, Ordering::Relaxed);
                if self.fin {
                    self.fragmented = false;
                }
            }
            1 | 2 => self.fragmented = !self.fin,
            _ => {}
        }
        if !self.fragmented {
            self.started = None;
            self.deadline = None;
        }
    }

    /// The timeout, if the incomplete message has outlived `timeout` (checked after each read).
    fn check(
        &mut self,
        cx: &mut Context<'_>,
        timeout: Duration,
        read_pending: bool,
    ) -> Option<io::Error> {
        let started = self.started.filter(|_| !self.expired)?;
        let deadline = started + timeout;
        let passed = if read_pending {
            let sleep = self
                .deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            sleep.as_mut().reset(deadline);
            sleep.as_mut().poll(cx).is_ready()
        } else {
            Instant::now() >= deadline
        };
        passed.then(|| {
            self.expired = true;
            self.deadline = None;
            io::Error::new(io::ErrorKind::TimedOut, MessageTimeout)
        })
    }
}

/// The connection's WebSocket over its socket's read side.
pub(crate) type Ws = tokio_tungstenite::WebSocketStream<CountingIo>;

/// The upgraded socket's read side, counting the bytes that really cross it and following the client's
/// frames; what the protocol layer writes through it goes to the write task's [`Replies`].
///
/// Behind [`Server::serve_app`](crate::Server::serve_app) the socket is the accepted `TcpStream` itself,
/// taken back from hyper and split in two owned halves, so an abandoned connection can be reset (see
/// [`SocketWriter::reset_on_close`]); behind another HTTP server it is hyper's `Upgraded`, whatever that
/// wraps.
pub(crate) struct CountingIo {
    io: ReadHalf,
    replies: Arc<Replies>,
    /// Where the bytes crossing the socket are counted.
    stats: Arc<Stats>,
    /// How long one message may take to arrive, from its first byte to its last.
    message_timeout: Duration,
    frames: FrameTracker,
    /// For a client that compresses: the stream as the frame parser reads it, inflated.
    inflater: Option<Box<Inflater>>,
}

enum ReadHalf {
    /// The TCP socket's read half, and what hyper had read past the HTTP request (the first frames, if
    /// the client sent them at once), to be read first.
    Tcp(OwnedReadHalf, bytes::Bytes),
    Other(tokio::io::ReadHalf<Pin<Box<dyn Stream>>>),
}

/// Any other byte stream: hyper's `Upgraded` behind a foreign HTTP server, or an in-memory pipe.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send {}

impl<T: AsyncRead + AsyncWrite + Send> Stream for T {}

impl CountingIo {
    /// The upgraded socket in its two sides.
    pub(crate) fn new(
        upgraded: hyper::upgrade::Upgraded,
        node: &Node,
        compressed: bool,
    ) -> (Self, SocketWriter) {
        let (read, write) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let (read, write) = parts.io.into_inner().into_split();
                // An empty slice of hyper's read buffer would still keep the whole buffer alive.
                let early = if parts.read_buf.is_empty() {
                    bytes::Bytes::new()
                } else {
                    parts.read_buf
                };
                (ReadHalf::Tcp(read, early), WriteHalf::Tcp(write))
            }
            Err(upgraded) => split_other(Box::pin(TokioIo::new(upgraded))),
        };
        let (mut io, writer) = Self::with(read, write, node);
        if compressed {
            io.inflater = Some(Box::new(Inflater::new(node.config.max_message_size)));
        }
        (io, writer)
    }

    /// Any byte stream, such as an in-memory pipe, in its two sides.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn other(io: impl Stream + 'static, node: &Node) -> (Self, SocketWriter) {
        let (read, write) = split_other(Box::pin(io));
        Self::with(read, write, node)
    }

    fn with(read: ReadHalf, write: WriteHalf, node: &Node) -> (Self, SocketWriter) {
        let replies = Arc::new(Replies::default());
        let writer = SocketWriter::new(
            write,
            replies.clone(),
            node.stats.clone(),
            node.config.write_buffer_size,
        );
        let io = Self {
            io: read,
            replies,
            stats: node.stats.clone(),
            message_timeout: node.config.message_timeout,
            frames: FrameTracker::new(),
            inflater: None,
        };
        (io, writer)
    }

    /// The client's continuation frames not yet charged to its rate limit.
    pub(crate) fn continuations(&self) -> FrameCounter {
        self.frames.continuations.clone()
    }
}

fn split_other(io: Pin<Box<dyn Stream>>) -> (ReadHalf, WriteHalf) {
    let (read, write) = tokio::io::split(io);
    (ReadHalf::Other(read), WriteHalf::Other(write))
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let Some(inflater) = this.inflater.as_mut() else {
                return this.poll_raw(cx, buf);
            };
            // Input left from a read that filled a whole chunk goes on before the socket is read again.
            if let Err(err) = inflater.process() {
                // The rest of the stream is read as it comes, for the close handshake's drain.
                this.inflater = None;
                return Poll::Ready(Err(err.into()));
            }
            if inflater.has_output() {
                inflater.read(buf);
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            match this.poll_raw(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if buf.filled().len() == before {
                return Poll::Ready(Ok(()));
            }
            if let Some(inflater) = this.inflater.as_mut() {
                inflater.push_input(&buf.filled()[before..]);
                buf.set_filled(before);
            }
        }
    }
}

impl CountingIo {
    /// Reads the socket's bytes as they are, counting them and following the client's frames.
    fn poll_raw(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self;
        let before = buf.filled().len();
        let polled = match &mut this.io {
            ReadHalf::Tcp(_, pending) if !pending.is_empty() => {
                let n = pending.len().min(buf.remaining());
                buf.put_slice(&pending.split_to(n));
                if pending.is_empty() {
                    *pending = bytes::Bytes::new();
                }
                Poll::Ready(Ok(()))
            }
            ReadHalf::Tcp(tcp, _) => Pin::new(tcp).poll_read(cx, buf),
            ReadHalf::Other(io) => Pin::new(io).poll_read(cx, buf),
        };
        let read = &buf.filled()[before..];
        let eof = read.is_empty();
        if !eof {
            this.stats
                .bytes_received
                .fetch_add(read.len() as u64, Ordering::Relaxed);
            this.frames.feed(read);
        }
        let timeout = this.message_timeout;
        match polled {
            Poll::Ready(Ok(())) if eof => Poll::Ready(Ok(())),
            Poll::Ready(Ok(())) => match this.frames.check(cx, timeout, false) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Ready(Ok(())),
            },
            Poll::Pending => match this.frames.check(cx, timeout, true) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Pending,
            },
            failed => failed,
        }
    }
}

/// The protocol layer's own writes (pongs, the reply to a close) wait for the write task, which alone
/// writes to the socket; it flushes them.
impl AsyncWrite for CountingIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.replies.poll_push(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header for a payload of `len` bytes.
    fn header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut h = vec![u8::from(fin) << 7 | opcode];
        match len {
            0..=125 => h.push(0x80 | len as u8),
            126..=0xffff => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(0x80 | 127);
                h.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = header(fin, opcode, len);
        f.resize(f.len() + len, b'x');
        f
    }

    #[tokio::test]
    async fn whole_messages_leave_nothing_started() {
        let mut t = FrameTracker::new();
        for len in [0, 5, 125, 126, 70_000] {
            t.feed(&frame(true, 1, len));
            assert!(t.started.is_none(), "{len}");
        }
        // Byte by byte, across header and payload boundaries.
        for b in frame(true, 2, 300) {
            t.feed(&[b]);
        }
        assert!(t.started.is_none());
    }

    #[tokio::test]
    async fn an_incomplete_frame_or_message_is_started_until_its_end() {
        let mut t = FrameTracker::new();
        let f = frame(true, 1, 200);
        t.feed(&f[..1]);
        assert!(t.started.is_some(), "one header byte");
        t.feed(&f[1..f.len() - 1]);
        assert!(t.started.is_some(), "payload short by one");
        t.feed(&f[f.len() - 1..]);
        assert!(t.started.is_none());

        t.feed(&frame(false, 1, 10));
        t.feed(&frame(true, 9, 3)); // a ping between fragments
        t.feed(&frame(false, 0, 10));
        assert!(t.started.is_some(), "between fragments");
        t.feed(&frame(true, 0, 10));
        assert!(t.started.is_none());
        assert_eq!(t.continuations.load(Ordering::Relaxed), 2);
    }
}
