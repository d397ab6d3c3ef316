//! Inflating a compressing client's byte stream before the frame parser reads it.
//!
//! The frame parser (tungstenite) knows nothing of extensions and refuses a frame with RSV1 set. So the
//! connection's socket hands it a rewritten stream: frames of a compressed message are inflated as their
//! bytes arrive and handed on as fragments of at most [`CHUNK`] bytes each (the first with the message's
//! opcode, the last with FIN), every other frame as it came. The parser then applies its own rules
//! (`max_message_size`, UTF-8, fragmentation, control frames) to the inflated message, and nothing here
//! holds more than one chunk of inflated bytes: inflating goes on only as the parser reads.

use std::io;
use std::sync::Mutex;

use flate2::{Decompress, FlushDecompress, Status};
use tokio::io::ReadBuf;

use crate::close::{self, CloseCode};
use crate::sync::lock;

/// Inflated bytes handed on per fragment, and held at most before the parser reads them.
pub(crate) const CHUNK: usize = 16 * 1024;

/// Decompressors kept for the next message, across all connections.
const POOL_MAX: usize = 64;

/// The end of every compressed message, left off by its sender (RFC 7692, 7.2.2).
const TRAILER: [u8; 4] = [0, 0, 0xff, 0xff];

/// An emitted frame's header: opcode byte, "masked, 16-bit length", the length, a zero mask key (the
/// parser requires client frames to be masked; XOR with zeros leaves the payload as it is).
const HEADER: usize = 8;

static POOL: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// Why a compressing client's stream cannot go on; carried in an [`io::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The message inflates past `max_message_size` (close 1009).
    TooBig,
    /// The compressed data does not inflate (close 1007).
    Corrupt,
    /// Frames that break the extension's rules: a new data frame inside a compressed message, RSV1 on a
    /// continuation, an unmasked frame (close 1002).
    Protocol,
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TooBig => "compressed message inflates past max_message_size",
            Self::Corrupt => "compressed message does not inflate",
            Self::Protocol => "invalid frame sequence in a compressed message",
        })
    }
}

impl std::error::Error for InflateError {}

impl InflateError {
    /// The close code and reason the connection ends with.
    pub(crate) fn close(self) -> (CloseCode, &'static str) {
        match self {
            Self::TooBig => (close::MESSAGE_TOO_BIG, "message too big"),
            Self::Corrupt => (close::INVALID_PAYLOAD, "invalid compressed data"),
            Self::Protocol => (close::PROTOCOL_ERROR, "protocol error"),
        }
    }

    /// The inflate error `err` carries, if it carries one.
    pub(crate) fn of(err: &io::Error) -> Option<Self> {
        err.get_ref()?.downcast_ref::<Self>().copied()
    }
}

impl From<InflateError> for io::Error {
    fn from(err: InflateError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }
}

/// A decompressor and the chunk it inflates into: allocated once, reused message after message.
struct Slot {
    decompress: Decompress,
    chunk: Vec<u8>,
}

impl Slot {
    fn new() -> Self {
        Self {
            decompress: Decompress::new(false),
            chunk: vec![0; CHUNK],
        }
    }
}

/// A slot from the pool, given back (reset) when dropped.
struct Pooled(Option<Slot>);

impl Pooled {
    fn take() -> Self {
        let pooled = lock(&POOL).pop();
        Self(Some(pooled.unwrap_or_else(Slot::new)))
    }

    fn get(&mut self) -> &mut Slot {
        self.0.get_or_insert_with(Slot::new)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(mut slot) = self.0.take() {
            slot.decompress.reset(false);
            let mut pool = lock(&POOL);
            if pool.len() < POOL_MAX {
                pool.push(slot);
            }
        }
    }
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pooled")
    }
}

#[derive(Debug)]
enum State {
    /// Reading a frame header.
    Header { bytes: [u8; 14], len: usize },
    /// Copying the payload of a frame handed on as it is.
    Pass { left: u64 },
    /// Inflating the payload of a compressed message's frame.
    Inflate {
        left: u64,
        mask: [u8; 4],
        /// Payload bytes of this frame consumed so far (the mask's phase).
        pos: u64,
        /// Bytes at the front of the input already unmasked but not yet consumed by the decompressor.
        ready: usize,
        fin: bool,
    },
}

/// The compressed message being inflated.
#[derive(Debug)]
struct Message {
    /// The opcode for the next emitted fragment: the message's until one has gone out, then 0.
    opcode: u8,
    inflated: usize,
    compressed: usize,
    decompress: Pooled,
    /// Whether the last call filled all the room it had: the decompressor may hold more output.
    full: bool,
}

/// The rewriting state of one compressing client's stream.
#[derive(Debug)]
pub(crate) struct Inflater {
    max_message: usize,
    input: Vec<u8>,
    start: usize,
    output: Vec<u8>,
    out_pos: usize,
    /// Where the fragment being filled starts in `output`.
    open: Option<usize>,
    state: State,
    message: Option<Message>,
}

impl Inflater {
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            max_message,
            input: Vec::new(),
            start: 0,
            output: Vec::new(),
            out_pos: 0,
            open: None,
            state: State::Header {
                bytes: [0; 14],
                len: 0,
            },
            message: None,
        }
    }

    /// Bytes read from the socket, to rewrite.
    pub(crate) fn push_input(&mut self, raw: &[u8]) {
        self.input.extend_from_slice(raw);
    }

    /// Moves rewritten bytes into `buf`.
    pub(crate) fn read(&mut self, buf: &mut ReadBuf<'_>) {
        let ready = &self.output[self.out_pos..];
        let n = ready.len().min(buf.remaining());
        buf.put_slice(&ready[..n]);
        self.out_pos += n;
        if self.out_pos == self.output.len() {
            // Buffers go back once drained, so a quiet connection holds none.
            self.output = Vec::new();
            self.out_pos = 0;
        }
    }

    /// Whether rewritten bytes wait to be read.
    pub(crate) fn has_output(&self) -> bool {
        self.out_pos < self.output.len()
    }

    /// Rewrites buffered input until a chunk of output is ready or more input is needed.
    pub(crate) fn process(&mut self) -> Result<(), InflateError> {
        while self.output.len() - self.out_pos < CHUNK {
            let more_to_drain = self.message.as_ref().is_some_and(|m| m.full)
                && matches!(self.state, State::Inflate { .. });
            if self.start == self.input.len() && !more_to_drain {
                break;
            }
            match self.state {
                State::Header { .. } => self.header()?,
                State::Pass { left } => self.pass(left),
                State::Inflate { .. } => self.inflate()?,
            }
        }
        self.close_fragment(false);
        if self.start == self.input.len() {
            self.input = Vec::new();
            self.start = 0;
        }
        Ok(())
    }

    fn header(&mut self) -> Result<(), InflateError> {
        let State::Header { bytes, len } = &mut self.state else {
            return Ok(());
        };
        let needed = |bytes: &[u8; 14], len: usize| {
            if len < 2 {
                return 2;
            }
            let extended = match bytes[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            2 + extended + if bytes[1] & 0x80 != 0 { 4 } else { 0 }
        };
        while *len < needed(bytes, *len) && self.start < self.input.len() {
            bytes[*len] = self.input[self.start];
            *len += 1;
            self.start += 1;
        }
        if *len < needed(bytes, *len) {
            return Ok(());
        }
        let (bytes, len) = (*bytes, *len);
        let (fin, rsv1, rsv23, opcode) = (
            bytes[0] & 0x80 != 0,
            bytes[0] & 0x40 != 0,
            bytes[0] & 0x30 != 0,
            bytes[0] & 0x0f,
        );
        let payload = match bytes[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            127 => u64::from_be_bytes(bytes[2..10].try_into().unwrap_or_default()),
            short => u64::from(short),
        };
        let masked = bytes[1] & 0x80 != 0;
        let data = opcode == 1 || opcode == 2;
        let in_message = self.message.is_some();
        let compressed = match (in_message, data, opcode) {
            (false, true, _) if rsv1 => true,
            (true, true, _) => return Err(InflateError::Protocol),
            (true, false, 0) if rsv1 => return Err(InflateError::Protocol),
            (true, false, 0) => true,
            _ => false,
        };
        if !compressed {
            self.close_fragment(false);
            self.output.extend_from_slice(&bytes[..len]);
            self.state = State::Pass { left: payload };
            return Ok(());
        }
        if !masked || rsv23 {
            return Err(InflateError::Protocol);
        }
        if !in_message {
            self.message = Some(Message {
                opcode,
                inflated: 0,
                compressed: 0,
                decompress: Pooled::take(),
                full: false,
            });
        }
        self.state = State::Inflate {
            left: payload,
            mask: bytes[len - 4..len].try_into().unwrap_or_default(),
            pos: 0,
            ready: 0,
            fin,
        };
        self.end_of_frame()
    }

    fn pass(&mut self, left: u64) {
        let available = self.input.len() - self.start;
        let n = usize::try_from(left).map_or(available, |left| left.min(available));
        self.output
            .extend_from_slice(&self.input[self.start..self.start + n]);
        self.start += n;
        self.state = match left - n as u64 {
            0 => State::Header {
                bytes: [0; 14],
                len: 0,
            },
            left => State::Pass { left },
        };
    }

    fn inflate(&mut self) -> Result<(), InflateError> {
        let State::Inflate {
            left,
            mask,
            pos,
            ready,
            ..
        } = &mut self.state
        else {
            return Ok(());
        };
        let available = self.input.len() - self.start;
        let n = usize::try_from(*left).map_or(available, |left| left.min(available));
        for (i, byte) in self.input[self.start + *ready..self.start + n]
            .iter_mut()
            .enumerate()
        {
            *byte ^= mask[((*pos as usize) + *ready + i) % 4];
        }
        *ready = n;
        let (from, to) = (self.start, self.start + n);
        let consumed = self.inflate_into_output(from, to, FlushDecompress::None)?;
        let State::Inflate {
            left, pos, ready, ..
        } = &mut self.state
        else {
            return Ok(());
        };
        self.start += consumed;
        *left -= consumed as u64;
        *pos += consumed as u64;
        *ready -= consumed;
        let message = self.message.as_mut().ok_or(InflateError::Protocol)?;
        message.compressed += consumed;
        if message.compressed > self.max_message + self.max_message / 16 + 1024 {
            return Err(InflateError::TooBig);
        }
        self.end_of_frame()
    }

    /// At the end of a compressed frame's payload: waits for the next fragment, or, after the last one,
    /// inflates the trailer and hands on the final fragment.
    fn end_of_frame(&mut self) -> Result<(), InflateError> {
        let State::Inflate { left: 0, fin, .. } = self.state else {
            return Ok(());
        };
        if self.message.as_ref().is_some_and(|m| m.full) {
            // The decompressor still holds output; it is drained before the frame is done.
            return Ok(());
        }
        if fin {
            let mut trailer = &TRAILER[..];
            loop {
                let consumed = self.inflate_slice(trailer, FlushDecompress::Sync)?;
                trailer = &trailer[consumed..];
                if trailer.is_empty() && !self.message.as_ref().is_some_and(|m| m.full) {
                    break;
                }
            }
            self.close_fragment(true);
            self.message = None;
        }
        self.state = State::Header {
            bytes: [0; 14],
            len: 0,
        };
        Ok(())
    }

    /// Inflates `input[from..to]` (already unmasked) into the open fragment; returns the bytes consumed.
    fn inflate_into_output(
        &mut self,
        from: usize,
        to: usize,
        flush: FlushDecompress,
    ) -> Result<usize, InflateError> {
        let input = std::mem::take(&mut self.input);
        let result = self.inflate_slice(&input[from..to], flush);
        self.input = input;
        result
    }

    /// Inflates `input` into the open fragment (opening one if needed); returns the bytes consumed.
    fn inflate_slice(
        &mut self,
        input: &[u8],
        flush: FlushDecompress,
    ) -> Result<usize, InflateError> {
        let open = match self.open {
            Some(open) => open,
            None => {
                let open = self.output.len();
                self.output.extend_from_slice(&[0; HEADER]);
                self.open = Some(open);
                open
            }
        };
        let room = CHUNK - (self.output.len() - open - HEADER);
        let message = self.message.as_mut().ok_or(InflateError::Protocol)?;
        let Slot { decompress, chunk } = message.decompress.get();
        let (in_before, out_before) = (decompress.total_in(), decompress.total_out());
        let status = decompress.decompress(input, &mut chunk[..room], flush);
        let produced = usize::try_from(decompress.total_out() - out_before).unwrap_or(room);
        let consumed = usize::try_from(decompress.total_in() - in_before).unwrap_or(input.len());
        self.output.extend_from_slice(&chunk[..produced.min(room)]);
        let consumed = match status {
            Ok(Status::Ok | Status::BufError) => consumed,
            // A final block (BFINAL) ended the stream: nothing after it, the trailer included, inflates.
            Ok(Status::StreamEnd) => input.len(),
            Err(_) => return Err(InflateError::Corrupt),
        };
        message.inflated += produced;
        message.full = produced == room;
        if message.inflated > self.max_message {
            return Err(InflateError::TooBig);
        }
        if message.full {
            self.close_fragment(false);
        }
        Ok(consumed)
    }

    /// Writes the open fragment's header; a non-final fragment with nothing in it is dropped.
    fn close_fragment(&mut self, fin: bool) {
        let open = match self.open.take() {
            Some(open) => open,
            None if fin => {
                let open = self.output.len();
                self.output.extend_from_slice(&[0; HEADER]);
                open
            }
            None => return,
        };
        let len = self.output.len() - open - HEADER;
        if len == 0 && !fin {
            self.output.truncate(open);
            return;
        }
        let Some(message) = self.message.as_mut() else {
            return;
        };
        let [hi, lo] = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        self.output[open..open + 4].copy_from_slice(&[
            u8::from(fin) << 7 | message.opcode,
            0x80 | 126,
            hi,
            lo,
        ]);
        message.opcode = 0;
    }
}

#[cfg(test)]
mod tests {
    use flate2::{Compress, Compression, FlushCompress};

    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&TRAILER));
        out.truncate(out.len() - 4);
        out
    }

    /// A masked client frame.
    fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    /// The frames in a rewritten stream: (fin, rsv1, opcode, unmasked payload).
    fn frames(mut stream: &[u8]) -> Vec<(bool, bool, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !stream.is_empty() {
            let (b0, b1) = (stream[0], stream[1]);
            let (mut at, len) = match b1 & 0x7f {
                126 => (4, usize::from(u16::from_be_bytes([stream[2], stream[3]]))),
                127 => (
                    10,
                    u64::from_be_bytes(stream[2..10].try_into().unwrap()) as usize,
                ),
                n => (2, usize::from(n)),
            };
            assert!(b1 & 0x80 != 0, "handed on unmasked");
            let mask: [u8; 4] = stream[at..at + 4].try_into().unwrap();
            at += 4;
            let payload = stream[at..at + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            out.push((b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f, payload));
            stream = &stream[at + len..];
        }
        out
    }

    /// Feeds `input` in pieces of `step` bytes, reading everything handed on.
    fn run(input: &[u8], step: usize, max: usize) -> Result<Vec<u8>, InflateError> {
        let mut inflater = Inflater::new(max);
        let mut out = Vec::new();
        let mut buf = vec![0; 4096];
        for piece in input.chunks(step) {
            inflater.push_input(piece);
            loop {
                inflater.process()?;
                assert!(inflater.output.len() - inflater.out_pos <= 2 * CHUNK + 64);
                if !inflater.has_output() {
                    break;
                }
                let mut read = ReadBuf::new(&mut buf);
                inflater.read(&mut read);
                out.extend_from_slice(read.filled());
            }
        }
        Ok(out)
    }

    /// The messages a parser reassembles from a rewritten stream, with their opcodes.
    fn messages(stream: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut done = Vec::new();
        let mut partial: Option<(u8, Vec<u8>)> = None;
        for (fin, rsv1, opcode, payload) in frames(stream) {
            assert!(!rsv1);
            if opcode >= 8 {
                done.push((opcode, payload));
                continue;
            }
            let (op, mut data) = match opcode {
                0 => partial.take().expect("a continuation without a start"),
                op => {
                    assert!(partial.is_none(), "a new message inside another");
                    (op, Vec::new())
                }
            };
            data.extend_from_slice(&payload);
            if fin {
                done.push((op, data));
            } else {
                partial = Some((op, data));
            }
        }
        assert!(partial.is_none());
        done
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!(r#"{{"type":"chat","data":{{"n":{i}}}}}"#))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_compressed_message_comes_out_whole_however_it_is_read() {
        let message = text(3000);
        assert!(message.len() > 3 * CHUNK);
        let stream = frame(true, true, 1, &deflate(&message));
        for step in [1, 7, 1000, stream.len()] {
            let out = run(&stream, step, 1 << 20).unwrap();
            assert_eq!(messages(&out), [(1, message.clone())], "step {step}");
        }
    }

    #[test]
    fn an_incompressible_message_longer_than_64_kib() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let stream = frame(true, true, 2, &deflate(&noise));
        for step in [1000, 65_536, stream.len()] {
            let out = run(&stream, step, 1 << 20).unwrap();
            assert_eq!(messages(&out), [(2, noise.clone())], "step {step}");
        }
    }

    #[test]
    fn fragments_and_control_frames_between_them() {
        let message = text(500);
        let compressed = deflate(&message);
        let (a, rest) = compressed.split_at(compressed.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let mut stream = frame(false, true, 2, a);
        stream.extend(frame(true, false, 9, b"ping"));
        stream.extend(frame(false, false, 0, b));
        stream.extend(frame(true, false, 0, c));
        stream.extend(frame(true, false, 1, b"plain"));
        stream.extend(frame(true, true, 1, &deflate(b"")));
        for step in [3, stream.len()] {
            let out = run(&stream, step, 1 << 20).unwrap();
            assert_eq!(
                messages(&out),
                [
                    (9, b"ping".to_vec()),
                    (2, message.clone()),
                    (1, b"plain".to_vec()),
                    (1, Vec::new())
                ]
            );
        }
    }

    #[test]
    fn uncompressed_frames_pass_byte_for_byte() {
        let mut stream = frame(false, false, 1, b"abc");
        stream.extend(frame(true, false, 0, &text(100)));
        stream.extend(frame(true, false, 8, &[3, 232]));
        assert_eq!(run(&stream, 5, 1 << 20).unwrap(), stream);
    }

    #[test]
    fn a_bomb_stops_at_the_limit_without_inflating_the_rest() {
        let zeros = vec![0; 64 << 20];
        let bomb = deflate(&zeros);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let stream = frame(true, true, 1, &bomb);
        let mut inflater = Inflater::new(512 * 1024);
        inflater.push_input(&stream);
        let mut buf = vec![0; CHUNK];
        let mut handed_on = 0;
        let err = loop {
            if let Err(err) = inflater.process() {
                break err;
            }
            let mut read = ReadBuf::new(&mut buf);
            inflater.read(&mut read);
            handed_on += read.filled().len();
        };
        assert_eq!(err, InflateError::TooBig);
        assert!(handed_on <= 512 * 1024 + CHUNK, "{handed_on}");
    }

    #[test]
    fn bad_input_gets_its_error() {
        let garbage = frame(true, true, 1, &[0xff; 40]);
        assert_eq!(run(&garbage, 100, 1024), Err(InflateError::Corrupt));

        let mut inside = frame(false, true, 1, &deflate(b"hello"));
        inside.extend(frame(true, false, 1, b"x"));
        assert_eq!(run(&inside, 100, 1024), Err(InflateError::Protocol));

        let mut rsv1_continuation = frame(false, true, 1, &deflate(b"hello"));
        rsv1_continuation.extend(frame(true, true, 0, b"x"));
        assert_eq!(
            run(&rsv1_continuation, 100, 1024),
            Err(InflateError::Protocol)
        );

        let mut unmasked = frame(true, true, 1, &deflate(b"hello"));
        unmasked[1] &= 0x7f;
        unmasked.drain(2..6);
        assert_eq!(run(&unmasked, 100, 1024), Err(InflateError::Protocol));
    }

    #[test]
    fn decompressors_go_back_to_the_pool() {
        let stream = frame(true, true, 1, &deflate(&text(10)));
        run(&stream, stream.len(), 1 << 20).unwrap();
        assert!(!lock(&POOL).is_empty());
    }
}
