//! Gates in front of the upgrade: the origin policy and the authenticator.
//!
//! Both answer with an HTTP status before the WebSocket exists, so a rejected request never takes a client
//! slot: 403 for a disallowed `Origin`, 401 when the authenticator returns an error.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::http::{HeaderMap, Uri, header};
use serde::Serialize;
use serde_json::Value;

use crate::member::Member;
use crate::session::Session;

/// The upgrade request as the authenticator sees it: headers, path and query, cookies.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    uri: Uri,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
}

impl AuthRequest {
    pub(crate) fn new(uri: Uri, headers: HeaderMap, peer: Option<SocketAddr>) -> Self {
        Self { uri, headers, peer }
    }

    /// The address the request came from: known behind [`Server::serve`](crate::Server::serve) and
    /// [`Server::serve_app`](crate::Server::serve_app), or an app served with axum's `ConnectInfo`. Behind a
    /// reverse proxy it is the proxy's; read its forwarding header instead.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The request URI (path and query).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        query_parameter(&self.uri, name)
    }

    /// A cookie's value from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    }
}

/// What a successful authentication attaches to the new client: typed extensions (what handlers take as
/// [`Extension<T>`](crate::extract::Extension)), JSON metadata, and the user its log lines name.
///
/// ```
/// # #[derive(Clone)] struct User { name: String }
/// let data = ws_core::auth::ClientData::new()
///     .extension(User { name: "ann".into() })
///     .metadata("user", "ann")
///     .span_user("ann");
/// ```
#[derive(Default)]
pub struct ClientData {
    metadata: Vec<(String, Value)>,
    extensions: Vec<InsertExtension>,
    span_user: Option<String>,
    user: Option<String>,
    expires_at: Option<SystemTime>,
    issued_at: Option<SystemTime>,
}

/// Inserts one typed extension into a new client.
type InsertExtension = Box<dyn FnOnce(&Member) + Send>;

impl fmt::Debug for ClientData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientData")
            .field("metadata", &self.metadata)
            .field("extensions", &self.extensions.len())
            .field("span_user", &self.span_user)
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

impl ClientData {
    /// Nothing attached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches a metadata value (read later with [`Client::get_metadata`](crate::Client::get_metadata)). A value that cannot be
    /// represented as JSON is stored as `null`.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.metadata.push((key.into(), value));
        self
    }

    /// Attaches a typed extension (read later with [`Client::extension`](crate::Client::extension)).
    #[must_use]
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions
            .push(Box::new(move |client| client.insert_extension(value)));
        self
    }

    /// Names the user in the connection's `ws.connection` span (its `user` field), so every log line of the
    /// connection says whose it is. Nothing else reads it: chosen here, not guessed from the metadata.
    #[must_use]
    pub fn span_user(mut self, user: impl Into<String>) -> Self {
        self.span_user = Some(user.into());
        self
    }

    /// Names the user the connection belongs to: whom [`Server::disconnect_user`](crate::Server::disconnect_user)
    /// and [`Server::revoke_user`](crate::Server::revoke_user) reach, and (unless
    /// [`span_user`](Self::span_user) names another) the `user` of its log lines. A refresh may not change
    /// it (see [`session`](crate::session)).
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// When the credential expires: the connection is closed with 4001 past it, unless it refreshes (see
    /// [`session`](crate::session)). Usually the token's `exp`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let data = ws_core::auth::ClientData::new()
    ///     .user("ann")
    ///     .expires_at(SystemTime::now() + Duration::from_secs(300));
    /// ```
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// When the credential was issued (a token's `iat`): a revocation of the user refuses credentials
    /// issued before it, and lets newer ones in. Without it, every credential of a revoked user is refused
    /// while the revocation lasts.
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.issued_at = Some(at);
        self
    }

    /// The user named with [`user`](Self::user).
    pub fn user_name(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub(crate) fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
    }

    pub(crate) fn issued(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// What the metadata counts against `max_metadata_bytes`.
    pub(crate) fn metadata_bytes(&self) -> usize {
        self.metadata
            .iter()
            .map(|(key, value)| crate::member::metadata_bytes(key, value))
            .sum()
    }

    /// Attaches the metadata, extensions and session to a new client (`sessions`: whether every client
    /// gets one, as when the server refreshes sessions); returns the user its span names.
    pub(crate) fn apply(self, client: &Member, sessions: bool) -> Option<String> {
        let span_user = self.span_user.clone().or_else(|| self.user.clone());
        if sessions || self.user.is_some() || self.expires_at.is_some() {
            let user = self.user.as_deref().map(Arc::from);
            client.set_session(Session::new(user, self.expires_at));
        }
        self.apply_data(client);
        span_user
    }

    /// Sets the metadata and extensions on `client`; the metadata's size was checked.
    pub(crate) fn apply_data(self, client: &Member) {
        for (key, value) in self.metadata {
            // Checked against the bound before, and a `Value` always serializes.
            let _ = client.set_metadata(key, value);
        }
        for insert in self.extensions {
            insert(client);
        }
    }
}

/// Whether the request's `Origin` may connect (see [`Config::allowed_origins`](crate::Config::allowed_origins)).
/// Whether the request's `Host` (port ignored) is one of `allowed`; an empty list allows every host.
pub(crate) fn host_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(host, |(addr, _)| addr),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    allowed.iter().any(|a| {
        let a = a.trim_start_matches('[').trim_end_matches(']');
        match a.strip_prefix('.') {
            Some(domain) => {
                name.eq_ignore_ascii_case(domain)
                    || name.len() > a.len()
                        && name.is_char_boundary(name.len() - a.len())
                        && name[name.len() - a.len()..].eq_ignore_ascii_case(a)
            }
            None => name.eq_ignore_ascii_case(a),
        }
    })
}

pub(crate) fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    if allowed.is_empty() {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        return matches!((host, authority), (Some(h), Some(a)) if h.eq_ignore_ascii_case(a));
    }
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

/// The first value of the query parameter `name` of `uri`, percent-decoded.
pub(crate) fn query_parameter(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn default_policy_is_same_origin_and_allows_non_browsers() {
        assert!(origin_allowed(&[], &headers(None, "a.test:80")));
        assert!(origin_allowed(
            &[],
            &headers(Some("http://a.test:80"), "a.test:80")
        ));
        assert!(origin_allowed(
            &[],
            &headers(Some("https://A.test"), "a.test")
        ));
        assert!(!origin_allowed(
            &[],
            &headers(Some("http://evil.test"), "a.test")
        ));
        assert!(!origin_allowed(&[], &headers(Some("null"), "a.test")));
    }

    #[test]
    fn hosts_match_by_name_without_port() {
        let allowed = |list: &[&str], host: &str| {
            let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
            host_allowed(&list, &headers(None, host))
        };
        assert!(allowed(&[], "anything.test:1"));
        assert!(allowed(&["localhost"], "localhost:6001"));
        assert!(allowed(&["LOCALHOST"], "localhost"));
        assert!(!allowed(&["localhost"], "rebind.test:6001"));
        assert!(allowed(&["::1"], "[::1]:6001"));
        assert!(allowed(&["[::1]"], "[::1]"));
        assert!(allowed(&[".app.test"], "a.app.test:443"));
        assert!(allowed(&[".app.test"], "app.test"));
        assert!(!allowed(&[".app.test"], "evilapp.test"));
        assert!(!allowed(&["127.0.0.1"], "127.0.0.1.rebind.test"));
    }

    #[test]
    fn list_and_wildcard() {
        let list = vec!["https://app.test".to_owned()];
        assert!(origin_allowed(
            &list,
            &headers(Some("https://app.test"), "x")
        ));
        assert!(!origin_allowed(
            &list,
            &headers(Some("http://app.test"), "x")
        ));
        assert!(origin_allowed(
            &["*".to_owned()],
            &headers(Some("http://any.test"), "x")
        ));
    }

    #[test]
    fn query_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; session=\"xyz\""),
        );
        let req = AuthRequest::new("/ws?token=a%20b&x=1".parse().unwrap(), h, None);
        assert_eq!(req.query("token").as_deref(), Some("a b"));
        assert_eq!(req.query("nope"), None);
        assert_eq!(req.cookie("session").as_deref(), Some("xyz"));
        assert_eq!(req.cookie("a").as_deref(), Some("1"));
    }
}
