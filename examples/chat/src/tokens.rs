//! Expiring tokens (`--token-ttl SECS`): HS256 JWTs the page fetches from `GET /token?name=NAME`, checked
//! by the authenticator and by `$refresh`, so a page keeps its socket across many tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use ws_core::Error;
use ws_core::auth::ClientData;

use crate::handlers::{MAX_USER_CHARS, User, bounded};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    /// Expiry and issue time, in milliseconds since the Unix epoch (a JWT's seconds are too coarse for
    /// tokens that last a few seconds): `exp_ms` and `iat_ms`.
    exp_ms: u64,
    iat_ms: u64,
}

/// Signs and checks the chat's tokens.
#[derive(Clone)]
pub struct Tokens(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("ttl", &self.0.ttl).finish()
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Tokens {
    /// Tokens signed with `secret` (chat processes sharing a Redis share it), lasting `ttl`.
    ///
    /// # Errors
    ///
    /// When `secret` cannot be a key.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        // The expiry is `exp_ms`, checked by the server's session; no `exp` claim is required.
        validation.set_required_spec_claims(&["sub"]);
        validation.validate_exp = false;
        Ok(Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            ttl,
        })))
    }

    /// A token for `name`, lasting the configured time from now.
    ///
    /// # Errors
    ///
    /// `invalid_data` for a name that is empty or longer than the chat allows.
    pub fn issue(&self, name: &str) -> Result<String, Error> {
        if name.is_empty() {
            return Err(Error::invalid_data("a name is required"));
        }
        bounded("the user name", name, MAX_USER_CHARS)?;
        let now = SystemTime::now();
        let claims = Claims {
            sub: name.to_owned(),
            exp_ms: millis(now + self.0.ttl),
            iat_ms: millis(now),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .map_err(|_| Error::internal("cannot sign"))
    }

    /// What a token gives its connection: its user (an extension and the session's user), its expiry
    /// and its issue time. `unauthorized` for a token that is not one of these.
    ///
    /// # Errors
    ///
    /// `unauthorized` ("invalid token").
    pub fn check(&self, token: &str) -> Result<ClientData, Error> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map_err(|_| Error::unauthorized("invalid token"))?
            .claims;
        let user = User {
            admin: claims.sub == "admin",
            name: claims.sub.clone(),
        };
        Ok(ClientData::new()
            .user(&claims.sub)
            .expires_at(UNIX_EPOCH + Duration::from_millis(claims.exp_ms))
            .issued_at(UNIX_EPOCH + Duration::from_millis(claims.iat_ms))
            .extension(user))
    }

    /// How long a token lasts: what a revocation must outlast.
    pub fn ttl(&self) -> Duration {
        self.0.ttl
    }
}
