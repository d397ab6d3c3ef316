//! A client that speaks permessage-deflate, framed by hand from RFC 6455 and RFC 7692 (tungstenite's
//! client refuses compressed frames): what a browser does, with every byte on the wire visible.

use std::net::SocketAddr;

use bench::deflate::{client_frame, upgrade};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::WAIT;

/// A browser's offer.
pub(crate) const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// One frame from the server, as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireFrame {
    pub(crate) fin: bool,
    pub(crate) rsv1: bool,
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

impl WireFrame {
    /// The payload as the application sees it: inflated when RSV1 is set.
    pub(crate) fn text(&self) -> String {
        let bytes = if self.rsv1 {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        };
        String::from_utf8(bytes).expect("UTF-8 text")
    }
}

pub(crate) struct DeflateClient {
    tcp: BufReader<TcpStream>,
    /// The server's `Sec-WebSocket-Extensions` answer, if it sent one.
    pub(crate) extensions: Option<String>,
}

impl DeflateClient {
    /// Upgrades `path` with `offer` as the `Sec-WebSocket-Extensions` header (none when `None`).
    pub(crate) async fn connect(addr: SocketAddr, path: &str, offer: Option<&str>) -> Self {
        let mut tcp = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
        let host = addr.to_string();
        let answer = upgrade(&mut tcp, &host, path, offer);
        let extensions = tokio::time::timeout(WAIT, answer)
            .await
            .expect("response head in time")
            .expect("upgraded");
        Self { tcp, extensions }
    }

    /// Sends one masked frame as it is.
    pub(crate) async fn send_frame(&mut self, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) {
        let frame = client_frame(fin, rsv1, opcode, payload);
        self.tcp.get_mut().write_all(&frame).await.expect("write");
    }

    /// Sends `text` as one compressed text frame.
    pub(crate) async fn send_compressed(&mut self, text: &str) {
        self.send_frame(true, true, 1, &deflate(text.as_bytes()))
            .await;
    }

    /// The next frame from the server, pings skipped.
    pub(crate) async fn next_frame(&mut self) -> WireFrame {
        loop {
            let frame = tokio::time::timeout(WAIT, read_frame(&mut self.tcp))
                .await
                .expect("a frame in time");
            if frame.opcode != 9 {
                return frame;
            }
        }
    }

    /// The frames of the socket's next read (none buffered before it): bytes the server wrote in one
    /// system call arrive in one read on loopback, so this shows what went out together.
    pub(crate) async fn frames_of_next_read(&mut self) -> Vec<WireFrame> {
        assert!(
            self.tcp.buffer().is_empty(),
            "bytes left from an earlier read"
        );
        let mut bytes = vec![0; 64 * 1024];
        let n = tokio::time::timeout(WAIT, self.tcp.get_mut().read(&mut bytes))
            .await
            .expect("bytes in time")
            .expect("read");
        let mut rest = &bytes[..n];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            frames.push(read_frame(&mut rest).await);
        }
        frames
    }

    /// The close code the server closed with.
    pub(crate) async fn close_code(&mut self) -> u16 {
        loop {
            let frame = self.next_frame().await;
            if frame.opcode == 8 {
                return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            }
        }
    }
}

/// One frame from the server, read from `from`.
async fn read_frame(from: &mut (impl AsyncRead + Unpin)) -> WireFrame {
    let mut head = [0; 2];
    from.read_exact(&mut head).await.expect("frame head");
    let len = match head[1] & 0x7f {
        126 => u64::from(from.read_u16().await.expect("length")),
        127 => from.read_u64().await.expect("length"),
        n => u64::from(n),
    };
    assert_eq!(head[1] & 0x80, 0, "a server frame is never masked");
    let mut payload = vec![0; usize::try_from(len).expect("length")];
    from.read_exact(&mut payload).await.expect("payload");
    WireFrame {
        fin: head[0] & 0x80 != 0,
        rsv1: head[0] & 0x40 != 0,
        opcode: head[0] & 0x0f,
        payload,
    }
}

/// `data` as a permessage-deflate payload: raw deflate, sync flush, the trailing `00 00 ff ff` left off.
pub(crate) fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate");
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A permessage-deflate payload inflated.
pub(crate) fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(payload.len() * 8 + 1024);
    loop {
        let consumed = d.total_in() as usize;
        d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .expect("inflate");
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}
