//! What a node holds against sessions: its revocations, and the application's join check.

use std::sync::Arc;

use super::{Membership, Revocations};
use crate::error::Error;
use crate::member::Member;

/// The application's check of a join.
pub(crate) type JoinCheck = Arc<dyn Fn(&Member, &str) -> Result<Membership, Error> + Send + Sync>;

/// What this node holds against sessions: its revocations, and the application's join check.
pub(crate) struct Policy {
    pub(crate) revocations: Revocations,
    pub(crate) authorize: Option<JoinCheck>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("revocations", &self.revocations)
            .field("authorize", &self.authorize.is_some())
            .finish()
    }
}

impl Policy {
    /// What the join check grants `member` in `group` (everything, without one).
    pub(crate) fn authorize(&self, member: &Member, group: &str) -> Result<Membership, Error> {
        match &self.authorize {
            Some(check) => check(member, group),
            None => Ok(Membership::granted()),
        }
    }
}
