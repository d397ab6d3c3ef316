//! Where the client is in each group with history: sent first on every connection (`$positions`), so
//! joining such a group again replays what was missed, and used to drop a frame seen twice (replayed and
//! also delivered live).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;

/// Groups whose position is kept, at most (the least recently moved is forgotten first).
const MAX_POSITIONS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Position {
    pub(crate) group: String,
    pub(crate) epoch: String,
    pub(crate) offset: u64,
}

/// The last position seen per group, in the order they last moved.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    by_group: HashMap<String, (String, u64, u64)>,
    moves: u64,
}

impl Positions {
    /// Records a frame's position; `false` for a frame at or before the one last seen in that epoch.
    pub(crate) fn advance(&mut self, pos: &Position) -> bool {
        if let Some((epoch, offset, _)) = self.by_group.get(&pos.group)
            && *epoch == pos.epoch
            && pos.offset <= *offset
        {
            return false;
        }
        self.remember(&pos.group, &pos.epoch, pos.offset);
        true
    }

    /// A `$position` not followed by a replay (a new epoch, history lost, a first join): the group's
    /// position is where the history stands now, or unknown.
    pub(crate) fn restart(&mut self, group: &str, at: Option<(&str, u64)>) {
        match at {
            Some((epoch, offset)) => self.remember(group, epoch, offset),
            None => {
                self.by_group.remove(group);
            }
        }
    }

    /// The `$positions` frame, if any position is known.
    pub(crate) fn frame(&self) -> Option<String> {
        if self.by_group.is_empty() {
            return None;
        }
        let data: serde_json::Map<String, serde_json::Value> = self
            .by_group
            .iter()
            .map(|(group, (epoch, offset, _))| {
                (group.clone(), json!({"epoch": epoch, "offset": offset}))
            })
            .collect();
        Some(json!({"type": "$positions", "data": data}).to_string())
    }

    fn remember(&mut self, group: &str, epoch: &str, offset: u64) {
        self.moves += 1;
        self.by_group
            .insert(group.to_owned(), (epoch.to_owned(), offset, self.moves));
        if self.by_group.len() > MAX_POSITIONS {
            let oldest = self
                .by_group
                .iter()
                .min_by_key(|(_, (_, _, moved))| *moved)
                .map(|(group, _)| group.clone());
            if let Some(oldest) = oldest {
                self.by_group.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(group: &str, epoch: &str, offset: u64) -> Position {
        Position {
            group: group.into(),
            epoch: epoch.into(),
            offset,
        }
    }

    #[test]
    fn a_frame_seen_before_is_dropped_and_a_new_epoch_starts_over() {
        let mut positions = Positions::default();
        assert!(positions.advance(&at("r", "e1", 1)));
        assert!(positions.advance(&at("r", "e1", 2)));
        assert!(!positions.advance(&at("r", "e1", 2)));
        assert!(positions.advance(&at("r", "e2", 1)));
        let frame: serde_json::Value = serde_json::from_str(&positions.frame().unwrap()).unwrap();
        assert_eq!(
            frame,
            json!({"type": "$positions", "data": {"r": {"epoch": "e2", "offset": 1}}})
        );
    }

    #[test]
    fn past_the_bound_the_least_recently_moved_group_is_forgotten() {
        let mut positions = Positions::default();
        for i in 0..=MAX_POSITIONS {
            positions.advance(&at(&format!("g{i}"), "e", 1));
        }
        assert_eq!(positions.by_group.len(), MAX_POSITIONS);
        assert!(!positions.by_group.contains_key("g0"));
    }
}
