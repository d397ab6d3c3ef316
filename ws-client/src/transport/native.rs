//! The native backend: tokio-tungstenite over TCP (or TLS, when the application's tungstenite build
//! has it).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

use super::{Received, Transport};
use crate::client::Headers;
use crate::error::CloseInfo;

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A tokio-tungstenite connection.
pub(crate) struct Socket(Stream);

fn lost(error: &Error) -> CloseInfo {
    CloseInfo {
        code: 1006,
        reason: error.to_string(),
    }
}

impl Transport for Socket {
    const IN_BAND_REFUSALS: bool = false;

    async fn connect(url: &str, headers: &Headers) -> Result<Self, CloseInfo> {
        let mut request = url.into_client_request().map_err(|e| lost(&e))?;
        for (name, value) in headers {
            request.headers_mut().append(name, value.clone());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Self(ws)),
            Err(e) => Err(refusal(e)),
        }
    }

    async fn send(&mut self, text: String) -> Result<(), CloseInfo> {
        self.0.send(Message::text(text)).await.map_err(|e| lost(&e))
    }

    async fn receive(&mut self) -> Received {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Text(text))) => return Received::Text(text.as_str().to_owned()),
                Some(Ok(Message::Close(frame))) => {
                    let close = frame.map_or(
                        CloseInfo {
                            code: 1005,
                            reason: String::new(),
                        },
                        |f| CloseInfo {
                            code: f.code.into(),
                            reason: f.reason.to_string(),
                        },
                    );
                    // tungstenite answered the close; read on until the server ends the connection.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while self.0.next().await.is_some() {}
                    })
                    .await;
                    return Received::Closed(close);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Received::Closed(lost(&e)),
                None => {
                    return Received::Closed(CloseInfo {
                        code: 1006,
                        reason: "connection lost".to_owned(),
                    });
                }
            }
        }
    }

    async fn close(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            self.0.close(Some(frame)).await?;
            while self.0.next().await.is_some() {}
            Ok::<_, Error>(())
        })
        .await;
    }
}

/// A failed handshake as a close: HTTP status S as 3000 + S with the body's first line (what a
/// `ws_refusal=close` client is told), anything else as 1006.
fn refusal(error: Error) -> CloseInfo {
    match error {
        Error::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            let reason = String::from_utf8_lossy(body)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            CloseInfo {
                code: 3000 + response.status().as_u16(),
                reason,
            }
        }
        other => lost(&other),
    }
}
