//! `ws_core` connection module docs: each connection's tasks run in a `ws.connection` span with its client
//! id, remote address and user; each handled message in a `ws.message` span (type, request id) inside it;
//! closes are events with their code. A layer records what a subscriber would see.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use ws_core::Client;
use ws_core::auth::ClientData;
use ws_core::protocol::Message;
use ws_core::{Error, Server};

use crate::support::{config, spawn};

/// A span or an event as recorded: its name (or message) and fields, and the names of the spans around it.
#[derive(Debug, Clone, Default)]
struct Recorded {
    name: String,
    fields: BTreeMap<String, String>,
    scope: Vec<String>,
}

#[derive(Default, Clone)]
struct Recorder {
    spans: Arc<Mutex<BTreeMap<u64, Recorded>>>,
    events: Arc<Mutex<Vec<Recorded>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut span = Recorded {
            name: attrs.metadata().name().to_owned(),
            ..Recorded::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        if let Some(scope) = ctx.span_scope(id) {
            span.scope = scope.skip(1).map(|s| s.name().to_owned()).collect();
        }
        self.spans.lock().unwrap().insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut recorded = Recorded::default();
        event.record(&mut Fields(&mut recorded.fields));
        recorded.name = recorded.fields.remove("message").unwrap_or_default();
        if let Some(scope) = ctx.event_scope(event) {
            recorded.scope = scope.map(|s| s.name().to_owned()).collect();
        }
        self.events.lock().unwrap().push(recorded);
    }
}

#[tokio::test]
async fn connections_and_messages_carry_their_spans() {
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let srv = spawn(
        Server::builder(config())
            .auth(|_| async {
                // The span's user is the one named for it, not a metadata key of the same name.
                let data = ClientData::new().metadata("user", "bob").span_user("ann");
                Ok::<_, Error>(data)
            })
            .on("echo", |client: Client, m: Message| async move {
                let _ = client.send(&m);
            }),
    )
    .await;
    let mut client = srv.connect().await;
    client
        .send_json(json!({"type": "echo", "data": 1, "id": 7}))
        .await;
    assert_eq!(client.recv().await["data"], 1);
    client
        .ws
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![1u8]))
        .await
        .unwrap();
    assert_eq!(client.recv_close().await.code, 1003);

    crate::support::eventually("the close is recorded", || async {
        recorder.events.lock().unwrap().iter().any(|e| {
            e.name == "closing" && e.fields.get("code").map(String::as_str) == Some("1003")
        })
    })
    .await;
    let spans: Vec<Recorded> = recorder.spans.lock().unwrap().values().cloned().collect();
    let connection = spans
        .iter()
        .find(|s| s.name == "ws.connection")
        .expect("a ws.connection span");
    assert_eq!(connection.fields["client_id"].len(), 32);
    assert!(
        connection.fields["remote"].starts_with("127.0.0.1:"),
        "{connection:?}"
    );
    assert_eq!(connection.fields["user"], "ann");
    let message = spans
        .iter()
        .find(|s| s.name == "ws.message")
        .expect("a ws.message span");
    assert_eq!(message.fields["type"], "echo");
    assert_eq!(message.fields["id"], "7");
    assert_eq!(message.scope, ["ws.connection"]);
    let closing = recorder
        .events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.name == "closing")
        .cloned()
        .unwrap();
    assert_eq!(closing.scope, ["ws.connection"]);
}
