//! Reading a client's `Sec-WebSocket-Extensions` offers and answering the first acceptable one.

use axum::http::{HeaderMap, HeaderValue, header};

use super::Compression;

/// What a connection agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) min_size: usize,
    pub(crate) level: u32,
    /// The `server_max_window_bits` the client asked for, repeated in the answer as RFC 7692 requires.
    server_window: Option<u8>,
}

impl Negotiated {
    /// The window the server compresses with: 15, unless the client asked for less.
    pub(crate) fn window_bits(&self) -> u8 {
        self.server_window.unwrap_or(15)
    }

    /// The `Sec-WebSocket-Extensions` answer.
    pub(crate) fn response(&self) -> HeaderValue {
        let mut value = String::from(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        );
        if let Some(bits) = self.server_window {
            value.push_str(&format!("; server_max_window_bits={bits}"));
        }
        HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static("permessage-deflate"))
    }
}

/// The first `permessage-deflate` offer the server can accept, if compression is on.
pub(crate) fn negotiate(config: &Compression, headers: &HeaderMap) -> Option<Negotiated> {
    if !config.enabled {
        return None;
    }
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(accept)
        .map(|server_window| Negotiated {
            min_size: config.min_size,
            level: config.level,
            server_window,
        })
}

/// Accepts one offer: `Some(server_max_window_bits asked for)`, or `None` for an offer of another
/// extension, or one with an unknown, repeated or malformed parameter (the client's next offer is tried).
fn accept(offer: &str) -> Option<Option<u8>> {
    let mut params = offer.split(';').map(str::trim);
    if !params.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen = [false; 4];
    let mut server_window = None;
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        let (slot, ok) = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => (0, value.is_none()),
            "client_no_context_takeover" => (1, value.is_none()),
            // zlib has no raw deflate with a 256-byte window: an offer asking for 8 bits is declined.
            "server_max_window_bits" => {
                server_window = value.and_then(window_bits).filter(|bits| *bits >= 9);
                (2, server_window.is_some())
            }
            // The client's window is its own business: whatever it is, the server inflates with 15 bits.
            "client_max_window_bits" => (3, value.is_none_or(|v| window_bits(v).is_some())),
            _ => return None,
        };
        if !ok || std::mem::replace(&mut seen[slot], true) {
            return None;
        }
    }
    Some(server_window)
}

/// A window size parameter: 8 to 15, digits only.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(values: &[&str]) -> Option<Negotiated> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::SEC_WEBSOCKET_EXTENSIONS, v.parse().unwrap());
        }
        negotiate(&Compression::deflate(), &headers)
    }

    #[test]
    fn a_browser_offer_is_accepted_without_context_takeover() {
        let n = offer(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(n.window_bits(), 15);
        assert_eq!(
            n.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn a_smaller_server_window_is_used_and_repeated() {
        let n = offer(&["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(n.window_bits(), 10);
        assert!(
            n.response()
                .to_str()
                .unwrap()
                .ends_with("; server_max_window_bits=10")
        );
        let quoted = offer(&["permessage-deflate; server_max_window_bits=\"15\""]).unwrap();
        assert_eq!(quoted.window_bits(), 15);
    }

    #[test]
    fn malformed_offers_are_skipped_for_the_next_one() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(offer(&[bad]), None, "{bad}");
            assert!(offer(&[bad, "permessage-deflate"]).is_some(), "{bad}");
        }
        assert!(offer(&["foo, permessage-deflate; server_no_context_takeover"]).is_some());
    }

    #[test]
    fn nothing_is_accepted_when_compression_is_off() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("permessage-deflate"),
        );
        assert_eq!(negotiate(&Compression::off(), &headers), None);
    }
}
