//! The page's side, compiled to WebAssembly: every check the browser test reads, run in order.

use serde_json::{Map, Value};
use wasm_bindgen::prelude::*;
use ws_client::{Client, ClientError, Incoming, State};

use crate::{Confirmed, Inbound, Outbound, inbound, outbound};

/// Runs the checks against the server at `url` (its WebSocket path) and returns what each observed, as
/// a JSON object, for the test to compare with what it expects.
#[wasm_bindgen]
pub async fn scenario(url: String) -> String {
    let mut seen = Map::new();

    // A refusal reaches the browser only in-band: the close 3000 + the HTTP status.
    note(
        &mut seen,
        "refused",
        refused(&format!("{url}?token=")).await,
    );

    let client = match Client::<Inbound, Outbound>::connect(format!("{url}?token=ann")).await {
        Ok(client) => client,
        Err(e) => {
            note(&mut seen, "connect", e.to_string());
            return Value::Object(seen).to_string();
        }
    };
    note(&mut seen, "connect", "open".to_owned());

    // The page answers the server's question; the handler awaits a JavaScript promise, which is not
    // `Send`: in the browser it need not be.
    client.handle::<outbound::Confirm, _, _>(|confirm| async move {
        let promise = js_sys::Promise::resolve(&JsValue::from(confirm.question.len() as u32));
        let length = wasm_bindgen_futures::JsFuture::from(promise).await;
        Ok(Confirmed {
            yes: length
                .ok()
                .and_then(|v| v.as_f64())
                .is_some_and(|n| n > 0.0),
            by: "wasm".to_owned(),
        })
    });

    let first = client
        .request(inbound::Join {
            room: "lobby".into(),
        })
        .await;
    note(
        &mut seen,
        "joined",
        describe(first.as_ref().map(|j| j.room.clone())),
    );

    let shout = client.send(Inbound::Shout {
        room: "lobby".into(),
        text: "hello from wasm".into(),
    });
    note(
        &mut seen,
        "shout",
        match (shout, client.next().await) {
            (
                Ok(()),
                Some(Incoming::Message {
                    message: Outbound::Shouted { text, user },
                    ..
                }),
            ) => {
                format!("{user}: {text}")
            }
            (sent, other) => format!("{sent:?} then {other:?}"),
        },
    );

    let asked = client
        .request(inbound::AskMe {
            question: "ready?".into(),
        })
        .await;
    note(
        &mut seen,
        "asked",
        describe(asked.map(|c| format!("{} by {}", c.yes, c.by))),
    );

    note(
        &mut seen,
        "error",
        match client.request(inbound::Secret).await {
            Err(ClientError::Server(e)) => format!("{}: {}", e.code(), e.message()),
            other => format!("{other:?}"),
        },
    );

    // The server closes the connection (1001); the client connects again by itself. A request may still
    // be answered on the old connection before its close, or lost with it: ask until a new one answers.
    let _ = client.send(Inbound::Kick);
    let mut again = Err(ClientError::Timeout);
    for _ in 0..20 {
        again = client
            .request(inbound::Join {
                room: "lobby".into(),
            })
            .await;
        let by_the_old = matches!((&first, &again), (Ok(f), Ok(a)) if f.id == a.id);
        if !by_the_old && !matches!(again, Err(ClientError::Lost(_))) {
            break;
        }
    }
    note(
        &mut seen,
        "reconnected",
        match (&first, &again) {
            (Ok(first), Ok(again)) => format!("new connection: {}", first.id != again.id),
            _ => format!("{again:?}"),
        },
    );

    // A typed stream, cut by the server half-way: the client resumes it, every number once, in order.
    note(&mut seen, "streamed", streamed(&client).await);

    client.close();
    note(
        &mut seen,
        "closed",
        match client.send(Inbound::Kick) {
            Err(ClientError::Closed(None)) => "closed".to_owned(),
            other => format!("{other:?}"),
        },
    );
    Value::Object(seen).to_string()
}

/// Reads the numbers 1 to 100, with the connection cut at 50; what came, summed up.
async fn streamed(client: &Client<Inbound, Outbound>) -> String {
    let mut numbers = match client.stream(inbound::Count {
        to: 100,
        delay_ms: 5,
    }) {
        Ok(numbers) => numbers,
        Err(e) => return format!("error: {e}"),
    };
    let mut got = Vec::new();
    while let Some(next) = numbers.next().await {
        match next {
            Ok(n) => {
                got.push(n);
                if n == 50 {
                    let _ = client.send(Inbound::Kick);
                }
            }
            Err(e) => return format!("error after {}: {e}", got.len()),
        }
    }
    let in_order = got.iter().copied().eq(1..=100);
    format!("{} numbers, in order once each: {in_order}", got.len())
}

/// How a connection that the server refuses ends: the close code the client stops at.
async fn refused(url: &str) -> String {
    match Client::<Inbound, Outbound>::connect(url).await {
        Err(ClientError::Closed(Some(close))) => close.code.to_string(),
        Err(e) => e.to_string(),
        // The browser opens before the refusal's close arrives: the client then stops at that close.
        Ok(client) => {
            while client.next().await.is_some() {}
            match client.state() {
                State::Closed(Some(close)) => close.code.to_string(),
                other => format!("{other:?}"),
            }
        }
    }
}

fn note(seen: &mut Map<String, Value>, check: &str, value: String) {
    seen.insert(check.to_owned(), Value::String(value));
}

fn describe<T: std::fmt::Display, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(value) => value.to_string(),
        Err(e) => format!("error: {e}"),
    }
}
