//! Micro-benchmarks of the hot path, without sockets: `cargo bench -p bench --bench hot_path`.
//!
//! - `envelope`: parsing a chat frame as the read task does, and serializing a typed outbound message;
//! - `dispatch`: a frame through routing, middleware and the handler, typed and untyped, with and without
//!   a `$reply`;
//! - `fanout`: one frame enqueued for 10 000 clients, to everyone and to a group.
//!
//! Handlers here finish without waiting, so each dispatch future completes on its first poll.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use ws_core::bench_support::{detached_client, dispatch, drain, parse_envelope};
use ws_core::message::IntoFrame;
use ws_core::protocol::Message;
use ws_core::{Client, Config, Server, on, ws_messages};

/// What the benchmarked clients send.
#[ws_messages]
pub enum Inbound {
    /// A chat line, the common case.
    Chat {
        /// The line.
        text: String,
        /// Its room, if any.
        room: Option<String>,
    },
    /// A request: answered with how many items it carries.
    #[ws(reply = u64)]
    Count {
        /// Anything to count.
        items: Vec<u32>,
    },
}

/// What the benchmarked server sends.
#[ws_messages(outbound)]
#[derive(Clone)]
pub enum Outbound {
    /// A chat line as relayed.
    Chat {
        /// The line.
        text: String,
        /// Its room, if any.
        room: Option<String>,
        /// Who wrote it.
        user: String,
    },
}

#[on(Inbound::Chat)]
async fn chat(_client: Client, msg: inbound::Chat) {
    std::hint::black_box(msg);
}

#[on(Inbound::Count)]
async fn count(msg: inbound::Count) -> u64 {
    msg.items.len() as u64
}

const CHAT: &str = r#"{"type":"chat","data":{"text":"hello everyone, how are you all doing today?","room":"lobby"}}"#;
const RECIPIENTS: usize = 10_000;

fn config() -> Config {
    Config::default().max_connections(0)
}

fn envelope(c: &mut Criterion) {
    let frame = Bytes::from_static(CHAT.as_bytes());
    c.bench_function("envelope/parse_chat_frame", |b| {
        b.iter(|| assert!(parse_envelope(std::hint::black_box(&frame))));
    });
    let msg = Outbound::Chat {
        text: "hello everyone, how are you all doing today?".to_owned(),
        room: Some("lobby".to_owned()),
        user: "ann".to_owned(),
    };
    c.bench_function("envelope/encode_typed_outbound", |b| {
        b.iter_batched(|| msg.clone(), IntoFrame::into_frame, BatchSize::SmallInput);
    });
}

fn run(client: &Client, frame: &Bytes) {
    dispatch(client, frame)
        .now_or_never()
        .expect("handlers here never wait");
}

fn dispatching(c: &mut Criterion) {
    let typed = Server::builder(config())
        .handle(chat)
        .handle(count)
        .build()
        .expect("server");
    let typed_client = detached_client(&typed);
    let untyped = Server::builder(config())
        .on("chat", |_c: Client, m: Message| async move {
            std::hint::black_box(m);
        })
        .build()
        .expect("server");
    let untyped_client = detached_client(&untyped);
    let frame = Bytes::from_static(CHAT.as_bytes());
    c.bench_function("dispatch/typed_chat", |b| {
        b.iter(|| run(&typed_client, &frame));
    });
    c.bench_function("dispatch/untyped_value_chat", |b| {
        b.iter(|| run(&untyped_client, &frame));
    });
    let request = Bytes::from_static(br#"{"type":"count","data":{"items":[1,2,3,4,5]},"id":7}"#);
    c.bench_function("dispatch/typed_request_with_reply", |b| {
        b.iter(|| {
            run(&typed_client, &request);
            assert_eq!(drain(&typed_client), 1);
        });
    });
}

/// Times only the enqueueing; the queues are emptied between iterations, outside the measurement.
fn fan_out(c: &mut Criterion, name: &str, server: &Server, clients: &[Client], send: impl Fn()) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                send();
                total += start.elapsed();
                let queued: usize = clients.iter().map(drain).sum();
                assert_eq!(queued, RECIPIENTS);
            }
            total
        });
    });
    assert_eq!(server.stats().slow_consumer_drops, 0);
}

fn fanout(c: &mut Criterion) {
    let server = Server::builder(config()).build().expect("server");
    let clients: Vec<Client> = (0..RECIPIENTS).map(|_| detached_client(&server)).collect();
    for client in &clients {
        client.join("room").expect("join");
    }
    let frame = Outbound::Chat {
        text: "x".repeat(100),
        room: None,
        user: "ann".to_owned(),
    }
    .into_frame();
    fan_out(c, "fanout/broadcast_10000", &server, &clients, || {
        server.all().send(frame.clone());
    });
    fan_out(c, "fanout/group_10000", &server, &clients, || {
        server.to("room").send(frame.clone());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = envelope, dispatching, fanout
}
criterion_main!(benches);
