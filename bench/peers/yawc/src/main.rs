//! The benchmark protocol on bare yawc: the floor of `bare_axum` (`bench/src/floor.rs`, included by its
//! path) with yawc in place of tungstenite, so the two differ by their frame layer alone. Usage:
//! `yawc-peer [PORT]`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use yawc::frame::{Frame, OpCode};
use yawc::{IncomingUpgrade, Options};

#[path = "../../../src/floor.rs"]
mod floor;

use floor::Room;

async fn upgrade(ws: IncomingUpgrade, State(room): State<Arc<Room<Bytes>>>) -> Response {
    let Ok((response, socket)) = ws.upgrade(Options::default()) else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    tokio::spawn(async move {
        if let Ok(socket) = socket.await {
            connection(socket, room).await;
        }
    });
    response.into_response()
}

async fn connection<S>(socket: S, room: Arc<Room<Bytes>>)
where
    S: futures_util::Stream<Item = Frame> + futures_util::Sink<Frame> + Send + 'static,
{
    let (sink, mut stream) = socket.split();
    let member = room.member(sink, Frame::text);
    while let Some(frame) = stream.next().await {
        match frame.opcode() {
            OpCode::Text if !member.apply(&room, frame.as_str()).await => break,
            OpCode::Close => break,
            _ => {}
        }
    }
    member.leave(&room).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    floor::serve(upgrade).await
}
