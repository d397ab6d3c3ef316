//! The browser backend: the page's own `WebSocket`, its events turned into a channel the driver reads.

use tokio::sync::mpsc;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use super::{Received, Transport};
use crate::client::Headers;
use crate::error::CloseInfo;
use crate::runtime;

/// What the socket's event handlers saw.
enum SocketEvent {
    Open,
    Text(String),
    Closed(CloseInfo),
}

/// A browser `WebSocket`, with the handlers that feed its events to the driver.
pub(crate) struct Socket {
    ws: WebSocket,
    events: mpsc::UnboundedReceiver<SocketEvent>,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Handlers are dropped with the socket: the browser must not call them afterwards.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

fn lost(reason: impl Into<String>) -> CloseInfo {
    CloseInfo {
        code: 1006,
        reason: reason.into(),
    }
}

impl Transport for Socket {
    const IN_BAND_REFUSALS: bool = true;

    async fn connect(url: &str, (): &Headers) -> Result<Self, CloseInfo> {
        let ws = WebSocket::new(url).map_err(|e| lost(format!("{e:?}")))?;
        // The page's event loop hands over what the browser already buffered; the driver reads it at
        // once and passes it on to bounded queues, so this channel holds no more than the browser did.
        let (events, received) = mpsc::unbounded_channel();
        let opened = events.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let _ = opened.send(SocketEvent::Open);
        });
        let messages = events.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            // The envelope protocol is text; a binary frame is not one of its messages.
            if let Some(text) = event.data().as_string() {
                let _ = messages.send(SocketEvent::Text(text));
            }
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            let _ = events.send(SocketEvent::Closed(CloseInfo {
                code: event.code(),
                reason: event.reason(),
            }));
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let mut socket = Self {
            ws,
            events: received,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        };
        match socket.events.recv().await {
            Some(SocketEvent::Open) => Ok(socket),
            Some(SocketEvent::Closed(close)) => Err(close),
            Some(SocketEvent::Text(_)) | None => Err(lost("closed before it opened")),
        }
    }

    async fn send(&mut self, text: String) -> Result<(), CloseInfo> {
        self.ws
            .send_with_str(&text)
            .map_err(|e| lost(format!("{e:?}")))
    }

    async fn receive(&mut self) -> Received {
        loop {
            match self.events.recv().await {
                Some(SocketEvent::Text(text)) => return Received::Text(text),
                Some(SocketEvent::Closed(close)) => return Received::Closed(close),
                Some(SocketEvent::Open) => {}
                None => return Received::Closed(lost("connection lost")),
            }
        }
    }

    async fn close(&mut self) {
        let _ = self.ws.close_with_code_and_reason(1000, "");
        let _ = runtime::timeout(std::time::Duration::from_secs(1), async {
            while let Some(event) = self.events.recv().await {
                if matches!(event, SocketEvent::Closed(_)) {
                    break;
                }
            }
        })
        .await;
    }
}
