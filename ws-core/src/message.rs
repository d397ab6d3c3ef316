//! Typed message sets: what `#[ws_messages]` implements.
//!
//! A message set is an enum whose variants are the message types of one direction. Its serde form is the
//! envelope itself (`{"type": <wire name>, "data": <payload>}`), so a value of the enum is a frame. Every
//! variant also gets a payload type of its own (in a module named after the enum, in snake case), which
//! implements [`Variant`]: handlers receive that type, decoded straight from the frame's `data`.
//!
//! Direction is part of the type: only [`OutboundMessages`] can be sent to clients, and only variants of
//! [`InboundMessages`] can have handlers, so sending a client→server message by mistake does not compile.
//!
//! The traits live in `ws_protocol::message`, which clients share; [`IntoFrame`] is the server's.

pub use ws_protocol::message::*;

use crate::protocol::{Frame, Message};

/// Anything that can be sent as one frame: an untyped [`Message`], an already serialized [`Frame`], or a
/// value of an outbound message set. Client → server message sets are deliberately not included.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent to clients",
    label = "not an outbound message",
    note = "send a value of an enum declared with `#[ws_messages(outbound)]`, a `ws_core::protocol::Message` or a `ws_core::protocol::Frame`"
)]
pub trait IntoFrame {
    /// Serializes the message once.
    fn into_frame(self) -> Frame;
}

impl IntoFrame for Frame {
    fn into_frame(self) -> Frame {
        self
    }
}

impl IntoFrame for &Frame {
    fn into_frame(self) -> Frame {
        self.clone()
    }
}

impl IntoFrame for Message {
    fn into_frame(self) -> Frame {
        Frame::from_message(&self)
    }
}

impl IntoFrame for &Message {
    fn into_frame(self) -> Frame {
        Frame::from_message(self)
    }
}

impl<M: OutboundMessages> IntoFrame for M {
    fn into_frame(self) -> Frame {
        Frame::serialized(&self).with_delivery(self.delivery())
    }
}
