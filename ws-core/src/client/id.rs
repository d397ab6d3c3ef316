//! Client ids, drawn at random by the server.

pub use ws_protocol::ClientId;

/// A fresh id: 128 bits from the operating system's CSPRNG, as 32 lowercase hex characters.
pub(crate) fn random() -> ClientId {
    let bits: u128 = rand::random();
    ClientId::from(format!("{bits:032x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_bit_hex_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| random()).collect();
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
