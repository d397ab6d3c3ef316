use ws_core::on;

#[on]
async fn ping() {}

#[on(Ping)]
async fn pong() {}

fn main() {}
