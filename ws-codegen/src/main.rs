//! `cargo run -p ws-codegen [-- --check]`: regenerates (or checks) the SDK files of `examples/chat` in
//! `examples/chat/sdk`.

use std::path::PathBuf;

use chat::protocol::{Inbound, Outbound};
use ws_codegen::Codegen;

fn main() -> std::io::Result<()> {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/chat/sdk");
    Codegen::new("ws-core chat")
        .messages::<Inbound>()
        .messages::<Outbound>()
        .run(dir, check)
}
