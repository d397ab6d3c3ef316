// A handler stays a function: called as written, it returns what its body returns.
use ws_core::{Config, Server, on, ws_messages};

#[ws_messages]
pub enum Inbound {
    #[ws(reply = u32)]
    Add { a: u32, b: u32 },
}

#[on(Inbound::Add)]
async fn add(msg: inbound::Add) -> u32 {
    msg.a + msg.b
}

fn main() {
    let sum: u32 = futures_lite_block_on(add(inbound::Add { a: 2, b: 3 }));
    assert_eq!(sum, 5);
    let _ = Server::builder(Config::default()).handle(add);
}

fn futures_lite_block_on<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f.into_future())
}
