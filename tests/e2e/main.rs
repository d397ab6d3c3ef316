//! Black-box tests over real sockets on 127.0.0.1: a tungstenite client against ws-core servers and the
//! example binaries. One module per area; each test's doc comment names the section (and table row) of the README
//! or docs/protocol.md it checks.

mod axum_app;
mod backplane;
mod chat;
mod compression;
mod custom_backplane;
mod delivery;
mod echo;
mod frames;
mod fuzz_corpus;
mod groups;
mod handlers;
mod handshake;
mod history;
mod limits;
mod metrics;
mod pipeline;
mod presence;
mod requests;
mod rust_client;
mod server_api;
mod sessions;
mod shutdown;
mod spans;
mod streams;
mod support;
mod typed;
mod version;
mod whiteboard;
