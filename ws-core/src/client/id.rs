use std::fmt;
use std::sync::Arc;

/// A client's identity: 128 random bits as 32 lowercase hex characters (URL-safe).
///
/// Ids come from the operating system's CSPRNG via `rand`, so they are unguessable and, at 128 bits, never
/// repeat in practice; the registry also refuses an id that is in use.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    pub(crate) fn random() -> Self {
        let bits: u128 = rand::random();
        Self(Arc::from(format!("{bits:032x}")))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_bit_hex_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| ClientId::random()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.as_str().len(), 32);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }
}
