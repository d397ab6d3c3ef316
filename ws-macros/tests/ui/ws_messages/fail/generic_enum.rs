use ws_core::ws_messages;

#[ws_messages]
pub enum Inbound<T> {
    Data { value: T },
}

fn main() {}
