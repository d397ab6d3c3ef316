use std::fmt;
use std::sync::Arc;

/// A client's identity: on a ws-core server, 128 random bits as 32 lowercase hex characters (URL-safe).
///
/// The server draws ids from the operating system's CSPRNG, so they are unguessable and, at 128 bits,
/// never repeat in practice; its registry also refuses an id that is in use.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Serializes as the id's string.
impl serde::Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// An id that was created elsewhere (another node, storage, a test).
impl From<String> for ClientId {
    fn from(id: String) -> Self {
        Self(Arc::from(id))
    }
}

impl From<&str> for ClientId {
    fn from(id: &str) -> Self {
        Self(Arc::from(id))
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ClientId {
    fn borrow(&self) -> &str {
        &self.0
    }
}
