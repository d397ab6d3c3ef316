//! The history frames a client sends: `$positions` (where it was in each group) and `$history` (what it
//! missed in one group), answered on every node the same way.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Position, Positions};
use crate::error::Error;
use crate::member::Member;
use crate::node::SystemFrame;
use crate::protocol;
use crate::sync::lock;

/// A `$history` request: a group, and the offset after which the client wants its frames.
#[derive(Deserialize)]
struct HistoryRequest {
    group: String,
    #[serde(default)]
    since: u64,
}

impl HistoryRequest {
    fn parse(data: &str) -> Result<Self, Error> {
        serde_json::from_str(data)
            .map_err(|e| Error::invalid_data(format!("$history wants {{group, since?}}: {e}")))
    }
}

/// Reads a `$positions` frame's data, `{"<group>": {"epoch", "offset"}, ...}`, keeping at most `max`
/// entries with names of at most `max_name` bytes; replaces what the client sent before.
fn set_positions(client: &Member, data: &str, max: usize, max_name: usize) {
    let Ok(all) = serde_json::from_str::<HashMap<String, Position>>(data) else {
        return;
    };
    let kept: HashMap<String, Position> = all
        .into_iter()
        .filter(|(group, _)| group.len() <= max_name)
        .take(max)
        .collect();
    let positions = client.extension::<Positions>().unwrap_or_else(|| {
        let positions = Positions::default();
        client.insert_extension(positions.clone());
        positions
    });
    *lock(&positions.0) = kept;
}

/// History's system frames, `$positions` and `$history`, with their answers.
///
/// Without history, `$positions` is acknowledged and ignored, and `$history` is `not_found`. With it, the
/// positions are kept for the client's next joins, and `$history` goes to the backplane, which keeps the
/// history: [`LocalHistory`] on one node, or one that took it over with
/// [`Backplane::keep_history`](crate::backplane::Backplane::keep_history).
pub(crate) fn system_frames(keeps_history: bool) -> [(&'static str, SystemFrame); 2] {
    let positions: SystemFrame = Arc::new(move |node, client, incoming| {
        if keeps_history {
            let config = &node.config;
            set_positions(
                client,
                incoming.data_json(),
                config.max_groups_per_client,
                config.max_group_name_bytes,
            );
        }
        if let Some(id) = incoming.id {
            let _ = client.send(protocol::reply_frame(id, RawValue::NULL));
        }
    });
    let history: SystemFrame = Arc::new(move |node, client, incoming| {
        let Some(id) = incoming.id else { return };
        if !keeps_history {
            let err = Error::not_found("this server keeps no history");
            let _ = client.send(protocol::error_frame(Some(id), &err));
            return;
        }
        match HistoryRequest::parse(incoming.data_json()) {
            Ok(request) => {
                let (group, since) = (&request.group, request.since);
                node.backplane.fetch_history(client, id, group, since);
            }
            Err(err) => {
                let _ = client.send(protocol::error_frame(Some(id), &err));
            }
        }
    });
    [
        (protocol::POSITIONS_TYPE, positions),
        (protocol::HISTORY_TYPE, history),
    ]
}
