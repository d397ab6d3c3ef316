//! The socket's write half, owned by the write task alone: every byte the server sends to a client goes
//! out here, framed without copying.
//!
//! A batch of queued frames leaves in one vectored write: each frame's header (2 to 10 bytes) is encoded
//! into a per-batch buffer, and a large payload is written from the frame's own shared bytes — the ones a
//! broadcast encoded (and, for clients that compress, deflated) once for all its recipients — rather than
//! copied into a per-connection buffer. Small payloads are copied beside their headers, where one
//! contiguous slice costs the kernel less than many small ones. A batch costs one system call when the
//! kernel takes it whole.
//!
//! The protocol layer, which reads the client's frames, answers some of them on its own (a pong for a
//! ping, the reply to a client's close). It does not write them to the socket: they go to [`Replies`],
//! which the write task sends between two frames, so a reply never lands inside a frame being written.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use super::io::Stream;
use crate::member::Member;
use crate::send_queue::Stamp;
use crate::stats::Stats;
use crate::sync::lock;

/// Payloads from this size on are written from their shared bytes; smaller ones are copied beside their
/// header. The kernel copies each slice of a vectored write on its own, and for frames of a few hundred
/// bytes that costs more than the copy it saves: a fan-out of 128-byte frames spent 27 % of the server's
/// CPU copying slices in the kernel with one slice per payload, against 9 % for one contiguous buffer.
const SHARED_FROM: usize = 2 * 1024;

/// Reply bytes the protocol layer may leave waiting for the write task; past this, its write waits (it
/// goes on reading, and retries the write later), so a client that floods pings and does not read cannot
/// grow it.
const MAX_REPLIES: usize = 4 * 1024;

/// What the protocol layer writes on its own (pongs, the reply to a client's close), waiting for the write
/// task. Shared by the connection's read side, which fills it, and its [`SocketWriter`], which empties it.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    state: Mutex<RepliesState>,
    /// Whether `state` holds bytes: the write task checks it on every turn of its loop, without the lock.
    pending: AtomicBool,
    /// The write task, while it waits for something to write.
    writer: AtomicWaker,
}

#[derive(Debug, Default)]
struct RepliesState {
    bytes: Vec<u8>,
    /// The protocol layer, while its write waits for room.
    blocked: Option<Waker>,
    /// Nothing more goes out: the server's close frame was written, or the write task ended.
    closed: bool,
}

impl Replies {
    /// Takes `buf` from the protocol layer (whole), or waits for room.
    pub(crate) fn poll_push(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut state = lock(&self.state);
        if state.closed {
            // After the server's close frame nothing may follow it; an answer to the client's close
            // that crossed ours is not needed.
            return Poll::Ready(Ok(buf.len()));
        }
        if !state.bytes.is_empty() && state.bytes.len() + buf.len() > MAX_REPLIES {
            state.blocked = Some(cx.waker().clone());
            return Poll::Pending;
        }
        state.bytes.extend_from_slice(buf);
        self.pending.store(true, Ordering::Release);
        drop(state);
        self.writer.wake();
        Poll::Ready(Ok(buf.len()))
    }

    /// Waits until there are reply bytes to write.
    pub(crate) async fn ready(&self) {
        poll_fn(|cx| {
            if self.pending.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.writer.register(cx.waker());
            // Bytes pushed between the check and the registration found no waker to wake.
            if self.pending.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Moves the waiting reply bytes to the end of `out`.
    fn take(&self, out: &mut Vec<u8>) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        let mut state = lock(&self.state);
        self.pending.store(false, Ordering::Relaxed);
        if out.is_empty() {
            std::mem::swap(out, &mut state.bytes);
        } else {
            out.append(&mut state.bytes);
        }
        let blocked = state.blocked.take();
        drop(state);
        if let Some(blocked) = blocked {
            blocked.wake();
        }
    }

    /// Nothing more is written: later replies are discarded, and a blocked write goes on.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.bytes = Vec::new();
        self.pending.store(false, Ordering::Relaxed);
        let blocked = state.blocked.take();
        drop(state);
        if let Some(blocked) = blocked {
            blocked.wake();
        }
    }
}

/// The half of the socket that writes.
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Other(tokio::io::WriteHalf<Pin<Box<dyn Stream>>>),
}

/// The connection's write half: frames go out in vectored writes, the bytes written are counted, and each
/// write the kernel refuses or takes is reported to the client's send queue
/// ([`WriteStall`](crate::send_queue::WriteStall)).
///
/// A write interrupted (its future dropped when the client is given up on) is resumed by the next one
/// where it stopped, so a close frame written after it never lands inside a frame.
pub(crate) struct SocketWriter {
    half: WriteHalf,
    replies: Arc<Replies>,
    stats: Arc<Stats>,
    /// The client whose send queue the writes are reported to.
    member: Option<Member>,
    /// The frames of the batch being written.
    frames: Vec<(FrameHeader, Bytes)>,
    /// The batch ends with the server's close frame: nothing may follow it.
    closes: bool,
    /// The protocol layer's replies taken for this batch, then the headers of its first `encoded` frames,
    /// each followed by its payload when that is small.
    head: Vec<u8>,
    replied: usize,
    encoded: usize,
    /// Bytes of the batch already written.
    done: usize,
    /// A batch buffer larger than this (left by a burst) is freed once written (`write_buffer_size`).
    keep: usize,
}

impl SocketWriter {
    pub(crate) fn new(
        half: WriteHalf,
        replies: Arc<Replies>,
        stats: Arc<Stats>,
        keep: usize,
    ) -> Self {
        Self {
            half,
            replies,
            stats,
            member: None,
            frames: Vec::new(),
            closes: false,
            head: Vec::new(),
            replied: 0,
            encoded: 0,
            done: 0,
            keep,
        }
    }

    /// Reports the writes the kernel refuses and takes to `member`'s send queue.
    pub(crate) fn report_writes_to(&mut self, member: Member) {
        self.member = Some(member);
    }

    /// The protocol layer's replies waiting for this writer.
    pub(crate) fn replies(&self) -> &Arc<Replies> {
        &self.replies
    }

    /// Adds `message` to the batch the next [`write`](Self::write) sends.
    pub(crate) fn push(&mut self, message: Message) {
        let frame = match message {
            Message::Text(text) => (data_header(OpData::Text), Bytes::from(text)),
            Message::Binary(data) => (data_header(OpData::Binary), data),
            Message::Ping(data) => parts(Frame::ping(data)),
            Message::Pong(data) => parts(Frame::pong(data)),
            Message::Close(close) => {
                self.closes = true;
                parts(Frame::close(close))
            }
            Message::Frame(frame) => parts(frame),
        };
        self.frames.push(frame);
    }

    /// Writes the protocol layer's waiting replies, then the batch, in as few writes as the kernel takes
    /// it in. After a close frame, replies are discarded: nothing follows it on the wire.
    pub(crate) async fn write(&mut self) -> io::Result<()> {
        if self.done == 0 && self.encoded == 0 {
            self.head.clear();
            self.replies.take(&mut self.head);
            self.replied = self.head.len();
        }
        for (header, payload) in &self.frames[self.encoded..] {
            // Writing to a Vec cannot fail.
            let _ = header.format(payload.len() as u64, &mut self.head);
            if payload.len() < SHARED_FROM {
                self.head.extend_from_slice(payload);
            }
        }
        self.encoded = self.frames.len();
        let Self {
            half,
            stats,
            member,
            frames,
            head,
            replied,
            done,
            ..
        } = self;
        // Runs of small frames are one slice of `head`; a large payload is a slice of its own.
        let mut slices = Vec::with_capacity(1 + 2 * frames.len());
        let (mut start, mut at) = (0, *replied);
        for (header, payload) in frames.iter() {
            at += header.len(payload.len() as u64);
            if payload.len() < SHARED_FROM {
                at += payload.len();
            } else {
                slices.push(IoSlice::new(&head[start..at]));
                slices.push(IoSlice::new(payload));
                start = at;
            }
        }
        slices.push(IoSlice::new(&head[start..at]));
        let mut rest = &mut slices[..];
        // Skips what an interrupted write already sent (and empty slices).
        IoSlice::advance_slices(&mut rest, *done);
        while !rest.is_empty() {
            let n =
                poll_fn(|cx| poll_write_vectored(half, cx, rest, stats, member.as_ref())).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            *done += n;
            IoSlice::advance_slices(&mut rest, n);
        }
        drop(slices);
        self.frames.clear();
        self.encoded = 0;
        self.done = 0;
        if self.head.capacity() > self.keep {
            self.head = Vec::new();
        }
        if std::mem::take(&mut self.closes) {
            self.replies.close();
        }
        Ok(())
    }

    /// Makes closing the socket send a reset instead of a FIN behind unsent data: for a connection given
    /// up on, whose peer does not read, the kernel would otherwise keep its whole send buffer (up to
    /// megabytes) until the FIN gets through.
    pub(crate) fn reset_on_close(&self) {
        if let WriteHalf::Tcp(tcp) = &self.half {
            let _ = AsRef::<tokio::net::TcpStream>::as_ref(tcp).set_zero_linger();
        }
    }

    /// Gives the write half up without a FIN of its own: the socket closes when its read half goes.
    pub(crate) fn release(self) {
        self.replies.close();
        if let WriteHalf::Tcp(tcp) = self.half {
            tcp.forget();
        }
    }
}

/// The send queue hands its frames straight to the writer's batch.
impl Extend<Message> for SocketWriter {
    fn extend<I: IntoIterator<Item = Message>>(&mut self, messages: I) {
        for message in messages {
            self.push(message);
        }
    }
}

fn data_header(opcode: OpData) -> FrameHeader {
    FrameHeader {
        opcode: OpCode::Data(opcode),
        ..FrameHeader::default()
    }
}

fn parts(frame: Frame) -> (FrameHeader, Bytes) {
    let header = frame.header().clone();
    (header, frame.into_payload())
}

fn poll_write_vectored(
    half: &mut WriteHalf,
    cx: &mut Context<'_>,
    slices: &[IoSlice<'_>],
    stats: &Stats,
    member: Option<&Member>,
) -> Poll<io::Result<usize>> {
    let stall = member.map(|member| member.queue().write_stall());
    let polled = match half {
        WriteHalf::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, slices),
        WriteHalf::Other(io) => Pin::new(io).poll_write_vectored(cx, slices),
    };
    match &polled {
        Poll::Ready(Ok(n)) if *n > 0 => {
            stats.bytes_sent.fetch_add(*n as u64, Ordering::Relaxed);
            if let Some(stall) = stall {
                stall.progressed();
            }
        }
        Poll::Pending => {
            if let Some(stall) = stall {
                stall.refused(Stamp::now());
            }
        }
        _ => {}
    }
    polled
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;

    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;

    /// A writer into an in-memory pipe that holds `capacity` bytes, and the pipe's other end.
    fn writer(capacity: usize) -> (SocketWriter, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(capacity);
        let stream: Pin<Box<dyn Stream>> = Box::pin(ours);
        let (_, write) = tokio::io::split(stream);
        let writer = SocketWriter::new(
            WriteHalf::Other(write),
            Arc::new(Replies::default()),
            Arc::new(Stats::default()),
            16 * 1024,
        );
        (writer, theirs)
    }

    /// `messages` as tungstenite itself frames them for a server.
    fn framed(messages: &[Message]) -> Vec<u8> {
        let mut out = Vec::new();
        for message in messages.iter().cloned() {
            let frame = match message {
                Message::Text(t) => Frame::message(t, OpCode::Data(OpData::Text), true),
                Message::Binary(b) => Frame::message(b, OpCode::Data(OpData::Binary), true),
                Message::Ping(p) => Frame::ping(p),
                Message::Pong(p) => Frame::pong(p),
                Message::Close(c) => Frame::close(c),
                Message::Frame(f) => f,
            };
            frame.format(&mut out).unwrap();
        }
        out
    }

    fn close() -> Message {
        Message::Close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: "send queue full".into(),
        }))
    }

    #[tokio::test]
    async fn a_batch_goes_out_framed_as_the_protocol_layer_frames_it() {
        let payloads = [0, 1, 125, 126, 65_535, 65_536, 70_000];
        let mut messages: Vec<Message> = payloads
            .iter()
            .map(|&n| Message::Text("é".repeat(n / 2).into()))
            .collect();
        messages.push(Message::Binary(Bytes::from(vec![7u8; 300])));
        let mut deflated = Frame::message(vec![1u8, 2, 3], OpCode::Data(OpData::Text), true);
        deflated.header_mut().rsv1 = true;
        messages.push(Message::Frame(deflated));
        messages.push(Message::Ping(Bytes::new()));
        let expected = framed(&messages);

        let (mut writer, mut theirs) = writer(1 << 20);
        let read = tokio::spawn(async move {
            let mut got = vec![0u8; expected.len()];
            theirs.read_exact(&mut got).await.unwrap();
            got == expected
        });
        for message in messages {
            writer.push(message);
        }
        writer.write().await.unwrap();
        assert!(read.await.unwrap());
    }

    #[tokio::test]
    async fn an_interrupted_write_is_resumed_before_the_close_frame() {
        let batch: Vec<Message> = (0..20)
            .map(|i| Message::Text(format!("frame {i} {}", "x".repeat(100)).into()))
            .collect();
        let (mut writer, mut theirs) = writer(64);
        for message in batch.iter().cloned() {
            writer.push(message);
        }
        // The pipe takes 64 bytes and then refuses: the write stops inside the first frame.
        {
            let mut write = std::pin::pin!(writer.write());
            let polled = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
        }
        assert_eq!(writer.done, 64);
        writer.push(close());
        let mut expected = framed(&batch);
        expected.extend(framed(&[close()]));
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        writer.write().await.unwrap();
        drop(writer);
        assert_eq!(read.await.unwrap(), expected);
    }

    #[tokio::test]
    async fn replies_go_out_between_frames_and_none_after_the_close() {
        let (mut writer, mut theirs) = writer(1 << 16);
        let replies = writer.replies().clone();
        let pong = framed(&[Message::Pong(Bytes::from_static(b"p"))]);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(replies.poll_push(&mut cx, &pong).is_ready());
        writer.push(Message::Text("one".into()));
        writer.write().await.unwrap();
        writer.push(close());
        writer.write().await.unwrap();
        // Written after the close frame: the answer to a client's close that crossed ours.
        assert!(replies.poll_push(&mut cx, &framed(&[close()])).is_ready());
        writer.write().await.unwrap();
        drop(writer);

        let mut expected = pong;
        expected.extend(framed(&[Message::Text("one".into()), close()]));
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn replies_past_their_bound_wait_for_the_writer() {
        let replies = Replies::default();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let pong = [0x8a, 0x7d]
            .iter()
            .copied()
            .chain([0u8; 125])
            .collect::<Vec<_>>();
        let mut taken = 0;
        while replies.poll_push(&mut cx, &pong).is_ready() {
            taken += pong.len();
            assert!(taken <= MAX_REPLIES + pong.len(), "unbounded");
        }
        assert!(taken >= MAX_REPLIES - pong.len());
        let mut out = Vec::new();
        replies.take(&mut out);
        assert_eq!(out.len(), taken);
        assert!(replies.poll_push(&mut cx, &pong).is_ready());
    }
}
