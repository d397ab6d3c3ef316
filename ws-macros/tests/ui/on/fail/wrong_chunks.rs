use ws_core::stream::Chunks;
use ws_core::{on, ws_messages};

#[ws_messages]
pub enum Inbound {
    #[ws(stream = String)]
    Ask { question: String },
}

#[on(Inbound::Ask)]
async fn ask(chunks: Chunks<u32>, msg: inbound::Ask) {
    let _ = (chunks, msg);
}

fn main() {}
