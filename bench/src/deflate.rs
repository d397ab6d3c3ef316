//! A subscriber that may offer permessage-deflate, as a browser does: the handshake and the frames are
//! written by hand, since tungstenite's client refuses compressed frames. It counts the bytes that cross
//! its socket and inflates what arrives compressed, keeping the server's deflate context across messages
//! unless the server declared `server_no_context_takeover`.

use std::io;

use flate2::{Decompress, FlushDecompress};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What a browser offers.
const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// One subscriber's socket.
#[derive(Debug)]
pub struct Subscriber {
    tcp: BufReader<TcpStream>,
    /// Bytes of WebSocket frames received (the handshake left out).
    pub wire_bytes: u64,
    /// The server agreed on permessage-deflate.
    pub negotiated: bool,
    /// Whether messages are inflated and decoded; a subscriber that only counts them leaves them as they are
    /// (and gets empty texts), so the load generator's one core can keep up with a million a second.
    pub read: bool,
    reset_each_message: bool,
    decompress: Decompress,
}

impl Subscriber {
    /// Connects to `url` (`ws://HOST:PORT/PATH`), offering permessage-deflate when `offer` is set.
    pub async fn connect(url: &str, offer: bool) -> io::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or(io::ErrorKind::InvalidInput)?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let tcp = TcpStream::connect(host).await?;
        tcp.set_nodelay(true)?;
        let mut tcp = BufReader::new(tcp);
        let answer = upgrade(&mut tcp, host, &format!("/{path}"), offer.then_some(OFFER))
            .await?
            .map(|a| a.to_ascii_lowercase());
        Ok(Self {
            tcp,
            wire_bytes: 0,
            negotiated: answer
                .as_deref()
                .is_some_and(|a| a.starts_with("permessage-deflate")),
            reset_each_message: answer
                .as_deref()
                .is_some_and(|a| a.contains("server_no_context_takeover")),
            read: true,
            decompress: Decompress::new(false),
        })
    }

    /// Sends `text` in one masked, uncompressed text frame.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(0x1, text.as_bytes()).await
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let frame = client_frame(true, false, opcode, payload);
        self.tcp.get_mut().write_all(&frame).await
    }

    /// The next text message, inflated if it came compressed (empty when `read` is off); `None` once the
    /// server closed. Pings are answered on the way.
    pub async fn next_text(&mut self) -> io::Result<Option<String>> {
        let mut message = Vec::new();
        let mut compressed = false;
        loop {
            let mut head = [0; 2];
            self.tcp.read_exact(&mut head).await?;
            let (len, extra) = match head[1] & 0x7f {
                126 => (u64::from(self.tcp.read_u16().await?), 2),
                127 => (self.tcp.read_u64().await?, 8),
                n => (u64::from(n), 0),
            };
            let mut payload = vec![0; usize::try_from(len).map_err(io::Error::other)?];
            self.tcp.read_exact(&mut payload).await?;
            self.wire_bytes += 2 + extra + len;
            let (fin, rsv1, opcode) = (head[0] & 0x80 != 0, head[0] & 0x40 != 0, head[0] & 0x0f);
            match opcode {
                0x8 => return Ok(None),
                0x9 => {
                    self.send(0xa, &payload).await?;
                    continue;
                }
                0x1 | 0x2 => compressed = rsv1,
                _ => {}
            }
            if self.read {
                message.extend_from_slice(&payload);
            }
            if fin {
                break;
            }
        }
        if !self.read {
            return Ok(Some(String::new()));
        }
        if compressed {
            message = self.inflate(message)?;
        }
        String::from_utf8(message)
            .map(Some)
            .map_err(io::Error::other)
    }

    fn inflate(&mut self, mut payload: Vec<u8>) -> io::Result<Vec<u8>> {
        payload.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let d = &mut self.decompress;
        let start = d.total_in();
        let mut out = Vec::with_capacity(payload.len() * 4 + 64);
        loop {
            let consumed = usize::try_from(d.total_in() - start).map_err(io::Error::other)?;
            d.decompress_vec(&payload[consumed..], &mut out, FlushDecompress::Sync)
                .map_err(io::Error::other)?;
            let consumed = usize::try_from(d.total_in() - start).map_err(io::Error::other)?;
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity());
        }
        if self.reset_each_message {
            d.reset(false);
        }
        Ok(out)
    }
}

/// Sends the upgrade request for `path` on `host`, with `offer` as its `Sec-WebSocket-Extensions`, and
/// reads the answer's head: the server's `Sec-WebSocket-Extensions` answer, if any; an error for a status
/// other than 101.
pub async fn upgrade(
    tcp: &mut BufReader<TcpStream>,
    host: &str,
    path: &str,
    offer: Option<&str>,
) -> io::Result<Option<String>> {
    let extensions = offer
        .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
    );
    tcp.get_mut().write_all(request.as_bytes()).await?;
    let mut status = String::new();
    tcp.read_line(&mut status).await?;
    if !status.starts_with("HTTP/1.1 101") {
        return Err(io::Error::other(format!("upgrade refused: {status}")));
    }
    let mut answer = None;
    loop {
        let mut line = String::new();
        tcp.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(answer);
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("sec-websocket-extensions")
        {
            answer = Some(value.trim().to_owned());
        }
    }
}

/// A client frame as it goes on the wire: FIN, RSV1 (compressed) and opcode as given, the length in as few
/// bytes as it fits, the payload masked with a fixed key.
///
/// ```
/// let frame = bench::deflate::client_frame(true, false, 1, b"hi");
/// assert_eq!(frame[..2], [0x81, 0x82]);
/// assert_eq!(frame.len(), 2 + 4 + 2);
/// ```
pub fn client_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x13, 0xc7, 0x2e];
    let mut frame = vec![u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
