//! Attribute keywords.

pub(crate) const WS: &str = "ws";
pub(crate) const RENAME: &str = "rename";
pub(crate) const REPLY: &str = "reply";
pub(crate) const STREAM: &str = "stream";
pub(crate) const RENAME_ALL: &str = "rename_all";
pub(crate) const INBOUND: &str = "inbound";
pub(crate) const OUTBOUND: &str = "outbound";
pub(crate) const VOLATILE: &str = "volatile";
pub(crate) const LATEST: &str = "latest";
pub(crate) const CRATE: &str = "crate";
