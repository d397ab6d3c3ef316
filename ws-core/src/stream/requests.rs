//! The frames a reader sends about its streams, `$cancel` and `$resume`, answered beside the frame path.

use std::sync::Arc;

use serde::Deserialize;

use super::{CANCEL_TYPE, RESUME_TYPE, Streams};
use crate::error::Error;
use crate::node::SystemFrame;
use crate::protocol;

/// A `$cancel`'s data.
#[derive(Deserialize)]
struct Cancel {
    id: u64,
}

/// The system frames streams answer: `$cancel` and `$resume`.
pub(crate) fn system_frames(streams: Arc<Streams>) -> [(&'static str, SystemFrame); 2] {
    let cancelling = streams.clone();
    let cancel: SystemFrame = Arc::new(move |_node, member, incoming| {
        if let Ok(cancel) = serde_json::from_str::<Cancel>(incoming.data_json()) {
            cancelling.cancel(member, cancel.id);
        }
    });
    let resume: SystemFrame = Arc::new(move |_node, member, incoming| {
        let Some(id) = incoming.id() else {
            let err = Error::invalid_data("$resume is a request: it needs an id").reported();
            let _ = member.send(protocol::error_frame(None, &err));
            return;
        };
        if let Err(err) = streams.resume(member, id, incoming.data_json()) {
            let _ = member.send(protocol::error_frame(Some(id), &err));
        }
    });
    [(CANCEL_TYPE, cancel), (RESUME_TYPE, resume)]
}
