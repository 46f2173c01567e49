//! API key authentication: `Authorization: Basic base64("{key}:")` (Toss-style) or `Authorization: Bearer {key}`.
//!
//! Failed authentications are throttled per client address before any key is looked up: each failure takes a
//! token from the address's budget (`rate_limit.auth_failures_*`), and an address with none left gets 429 at once,
//! so guessing keys costs the guesser time and the gateway no key lookups. The client address is the TCP peer;
//! `X-Forwarded-For` is believed only from the proxies listed in `http.trusted_proxies`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use paygate_app::auth::{AuthError, Caller};
use paygate_domain::api_key::KeyKind;

use crate::error::{ApiError, ErrorCode};
use crate::middleware::rate_limit::{KeyedLimiter, Limit, Refusal};
use crate::AppState;

/// Where a request comes from, as far as failure budgets are concerned. IPv6 clients are grouped by /64, the
/// smallest block a subscriber usually gets, so rotating addresses inside one's own block buys no new budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// Requests that carry no peer address (in-process callers without `ConnectInfo`) share one budget.
    pub const UNKNOWN: ClientAddress = ClientAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED));

    pub fn new(ip: IpAddr) -> ClientAddress {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                ClientAddress(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => ClientAddress(v4),
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, a dual-stack socket's view of an IPv4 peer) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The authentication layer's state: the app and the failure budgets of client addresses.
#[derive(Clone)]
pub struct AuthLayer {
    state: AppState,
    failures: KeyedLimiter<ClientAddress>,
    trusted_proxies: Arc<[IpAddr]>,
}

impl AuthLayer {
    pub fn new(state: AppState) -> AuthLayer {
        let config = state.config.clone();
        let limit = Limit {
            per_period: config.rate_limit.auth_failures_per_minute,
            period: Duration::from_secs(60),
            burst: config.rate_limit.auth_failures_burst,
        };
        AuthLayer {
            failures: KeyedLimiter::new(limit, config.rate_limit.clients_tracked_max),
            trusted_proxies: config.http.trusted_proxies.iter().copied().map(canonical).collect(),
            state,
        }
    }

    /// Charges a failed authentication to `client` and answers with `error`, or with 429 when the address has no
    /// budget left (or none can be recorded for it).
    fn failed(&self, client: ClientAddress, error: ApiError) -> Response {
        match self.failures.check(&client) {
            Ok(()) => error.into_response(),
            Err(refusal) => too_many_failures(refusal).into_response(),
        }
    }
}

fn too_many_failures(refusal: Refusal) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::TooManyRequests,
        "too many failed authentications from this address; wait before retrying",
    );
    error.retry_after_secs = Some(refusal.retry_after_secs());
    error
}

/// The client's address: the TCP peer, or behind a trusted proxy the rightmost `X-Forwarded-For` entry that no
/// trusted proxy wrote about itself (entries further left were written by the client and prove nothing).
pub fn client_address(request: &Request, trusted_proxies: &[IpAddr]) -> ClientAddress {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return ClientAddress::UNKNOWN;
    };
    let peer = canonical(peer.ip());
    if !trusted_proxies.contains(&peer) {
        return ClientAddress::new(peer);
    }
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for entry in forwarded.iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            // A garbled entry ends the chain that can be believed; the proxy itself is the last known hop.
            break;
        };
        let ip = canonical(ip);
        if !trusted_proxies.contains(&ip) {
            return ClientAddress::new(ip);
        }
    }
    ClientAddress::new(peer)
}

/// Authenticates every request it wraps and puts the [`Caller`] into the request's extensions.
pub async fn authenticate(State(layer): State<AuthLayer>, mut request: Request, next: Next) -> Response {
    let client = client_address(&request, &layer.trusted_proxies);
    if let Err(refusal) = layer.failures.peek(&client) {
        return too_many_failures(refusal).into_response();
    }
    let presented = match presented_key(request.headers()) {
        Ok(key) => key,
        Err(error) => return layer.failed(client, error),
    };
    match layer.state.app.authenticate(&presented).await {
        Ok(caller) => {
            tracing::Span::current().record("merchant_id", tracing::field::display(caller.merchant.id));
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            let charged = is_guess(&error);
            let error = auth_error(error);
            if charged {
                layer.failed(client, error)
            } else {
                error.into_response()
            }
        }
    }
}

/// Whether a failure is what guessing looks like. A revoked key or an inactive merchant is a real key (a stale
/// deployment, not a guesser), and a store failure is ours, not the client's.
fn is_guess(error: &AuthError) -> bool {
    match error {
        AuthError::Malformed(_) | AuthError::Unknown => true,
        AuthError::Revoked | AuthError::MerchantInactive | AuthError::App(_) => false,
    }
}

fn presented_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::UnauthorizedKey,
            "send your secret key as `Authorization: Basic base64(secretKey + \":\")` or `Authorization: Bearer secretKey`",
        )
    };
    let header = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(missing)?;
    let text = header.to_str().map_err(|_| missing())?;
    let (scheme, value) = text.split_once(' ').ok_or_else(missing)?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(value.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidApiKey,
            "the Basic credentials are not valid base64 of `secretKey:`",
        )
    })?;
    let decoded = String::from_utf8(decoded).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidApiKey,
            "the Basic credentials are not valid base64 of `secretKey:`",
        )
    })?;
    // The key is the user name; the password part is empty by convention and ignored.
    let user = decoded.split_once(':').map(|(user, _)| user).unwrap_or(&decoded);
    Ok(user.to_owned())
}

fn auth_error(error: AuthError) -> ApiError {
    match error {
        AuthError::Malformed(why) => {
            ApiError::new(ErrorCode::InvalidApiKey, format!("the API key is malformed: {why}"))
        }
        AuthError::Unknown => ApiError::new(ErrorCode::UnauthorizedKey, "the API key is not valid"),
        AuthError::Revoked => ApiError::new(
            ErrorCode::RevokedApiKey,
            "the API key has been revoked; use its replacement",
        ),
        AuthError::MerchantInactive => {
            ApiError::new(ErrorCode::MerchantNotActive, "the merchant account is not active")
        }
        AuthError::App(paygate_app::AppError::Store(store)) => store.into(),
        AuthError::App(other) => ApiError::internal(&other),
    }
}

/// A caller authenticated with a secret key. Client keys (browser SDK) are refused here.
#[derive(Debug, Clone)]
pub struct SecretCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for SecretCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal(&"route is not behind the authentication layer"))?;
        if caller.key.kind != KeyKind::Secret {
            return Err(ApiError::new(
                ErrorCode::ClientKeyNotAllowed,
                "client keys can only start payments from a browser; use a secret key on your server",
            ));
        }
        Ok(SecretCaller(caller))
    }
}
