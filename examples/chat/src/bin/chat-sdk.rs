//! `cargo run -p chat --bin chat-sdk [-- --check]`: regenerates (or checks) the chat's TypeScript types,
//! JSON Schema and AsyncAPI document in `examples/chat/sdk`.

use std::path::PathBuf;
use std::process::ExitCode;

use chat::protocol::{Inbound, Member, Outbound};
use ws_codegen::Codegen;

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk");
    let codegen = Codegen::new("ws-core chat")
        .messages::<Inbound>()
        .messages::<Outbound>()
        .presence::<Member>();
    ws_codegen::exit_code(codegen.run(dir, check))
}
