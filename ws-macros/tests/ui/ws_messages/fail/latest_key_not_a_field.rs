use ws_core::ws_messages;

#[ws_messages(outbound)]
pub enum Outbound {
    #[ws(latest = "usr")]
    Cursor { user: String, x: u32 },
    #[ws(latest = "value")]
    Progress(u32),
}

fn main() {}
