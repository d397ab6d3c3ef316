use ws_core::message::{InboundMessages, OutboundMessages, Variant, WsMessages};
use ws_core::{payload, ws_messages};

#[payload]
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    x: i32,
    y: i32,
}

/// Every shape: unit, named fields, one type in parentheses (even one named like the variant).
#[ws_messages]
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Ping,
    Chat {
        /// The text.
        text: String,
        #[serde(default)]
        room: Option<String>,
    },
    Point(Point),
    #[ws(rename = "admin:purge", reply = bool)]
    AdminPurge,
    #[ws(reply = Vec<Point>)]
    ListPoints,
}

#[ws_messages(outbound, rename_all = "camelCase")]
pub(crate) enum Outbound {
    PointMoved(Point),
    UserLeft { user_id: String },
}

// A private enum in a nested module.
mod nested {
    use ws_core::ws_messages;

    #[ws_messages]
    enum Private {
        Hello { name: String },
    }

    pub(super) fn names() -> &'static [&'static str] {
        let _ = private::Hello { name: String::new() };
        <Private as ws_core::message::WsMessages>::NAMES
    }
}

fn main() {
    assert_eq!(Inbound::NAMES, ["ping", "chat", "point", "admin:purge", "list_points"]);
    assert_eq!(Outbound::NAMES, ["pointMoved", "userLeft"]);
    let _: <inbound::AdminPurge as Variant>::Reply = true;
    let _: <inbound::ListPoints as Variant>::Reply = Vec::<Point>::new();
    let point: inbound::Point = inbound::Point(Point { x: 1, y: 2 });
    let msg: Inbound = point.into();
    assert_eq!(Inbound::decode("point", r#"{"x":1,"y":2}"#).unwrap(), msg);
    let chat = inbound::Chat { text: "hi".into(), room: None };
    assert_eq!(chat.clone(), inbound::Chat::try_from(Inbound::from(chat)).unwrap());
    fn outbound<T: OutboundMessages>(_: T) {}
    outbound(Outbound::UserLeft { user_id: "u".into() });
    let _ = outbound::PointMoved(Point { x: 0, y: 0 });
    assert_eq!(nested::names(), ["hello"]);
}
