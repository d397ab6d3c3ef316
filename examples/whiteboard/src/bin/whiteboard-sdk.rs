//! `cargo run -p whiteboard --bin whiteboard-sdk [-- --check]`: regenerates (or checks) the whiteboard's
//! TypeScript types, JSON Schema and AsyncAPI document in `examples/whiteboard/sdk`.

use std::path::PathBuf;
use std::process::ExitCode;

use whiteboard::{Inbound, Outbound};
use ws_codegen::Codegen;

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk");
    let codegen = Codegen::new("ws-core whiteboard")
        .messages::<Inbound>()
        .messages::<Outbound>();
    ws_codegen::exit_code(codegen.run(dir, check))
}
