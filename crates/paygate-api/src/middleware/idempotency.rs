//! `Idempotency-Key` on POST: the same key and request replay the stored answer; the same key with another
//! request is refused (422 `IDEMPOTENCY_KEY_REUSED`); while the first is still running, 409
//! `IDEMPOTENT_REQUEST_PROCESSING`. Keys are scoped per merchant and mode and stored in the database, which is the
//! authority across gateway processes.
//!
//! What counts as "the same request": method, path with query, and the body — JSON bodies compared after
//! canonicalisation (object keys sorted, insignificant whitespace dropped), other bodies byte for byte.
//!
//! Server errors (5xx) are not stored: the key is released so the client's retry runs again. Business rules
//! (unique `orderId`, conditional state changes) keep such a retry from doing anything twice.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use paygate_app::auth::Caller;
use paygate_domain::idempotency::{IdempotencyKey, RequestFingerprint};
use paygate_store::{IdempotencyClaim, IdempotencyClaimOutcome, IdempotencyScope, StoredResponse};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(header) = request.headers().get(&IDEMPOTENCY_KEY).cloned() else {
        if state.config.idempotency.require_key {
            return ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                "this gateway requires an Idempotency-Key header on POST",
            )
            .into_response();
        }
        return next.run(request).await;
    };
    match run(state, header, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(state: AppState, header: HeaderValue, request: Request, next: Next) -> Result<Response, Response> {
    let key = header
        .to_str()
        .ok()
        .map(IdempotencyKey::parse)
        .unwrap_or(Err(paygate_domain::idempotency::IdempotencyKeyError::BadCharacter))
        .map_err(|e| ApiError::new(ErrorCode::InvalidIdempotencyKey, e.to_string()).into_response())?;
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"idempotency layer outside authentication").into_response())?;
    let (parts, body) = request.into_parts();
    let body = read_limited(body, state.config.http.body_max_bytes).await?;
    let fingerprint = fingerprint(
        &parts.method,
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        &body,
    );
    let scope = IdempotencyScope {
        merchant_id: caller.merchant.id,
        mode: caller.key.mode,
        key,
    };
    let now = state.app.clock().now();
    let lock_token = i64::from_le_bytes(paygate_app::random_bytes());
    let claim = IdempotencyClaim {
        scope: scope.clone(),
        fingerprint,
        lock_token,
        now,
        locked_until: now.saturating_add(paygate_domain::time::DurationMs::from_millis(
            state.config.idempotency.in_flight_lock_ms,
        )),
    };
    let store = state.app.store();
    match store
        .idempotency_claim(&claim)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
    {
        IdempotencyClaimOutcome::Claimed => {}
        IdempotencyClaimOutcome::Replay(stored) => return Ok(replay(stored)),
        IdempotencyClaimOutcome::InFlight => {
            let mut error = ApiError::new(
                ErrorCode::IdempotentRequestProcessing,
                "a request with this Idempotency-Key is still being processed; retry after it finishes",
            );
            error.retry_after_secs = Some(1);
            return Err(error.into_response());
        }
        IdempotencyClaimOutcome::Reused => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request",
            )
            .into_response())
        }
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if response.status().is_server_error() {
        if let Err(error) = store.idempotency_release(&scope, lock_token).await {
            tracing::warn!(%error, "could not release an idempotency key after a server error");
        }
        return Ok(response);
    }
    let (mut response_parts, response_body) = response.into_parts();
    let bytes = match read_limited(response_body, state.config.idempotency.response_max_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let _ = store.idempotency_release(&scope, lock_token).await;
            return Ok(ApiError::internal(&"response too large to store for idempotency").into_response());
        }
    };
    let content_type = response_parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    // Error responses carry their body in an extension until the outer layer renders them with the request ID;
    // store the rendered form so a replay is byte-identical apart from the request ID.
    let stored_body = match response_parts.extensions.get::<crate::error::ErrorBody>() {
        Some(error) => serde_json::to_vec(error).unwrap_or_default(),
        None => bytes.to_vec(),
    };
    let stored = StoredResponse {
        status: response_parts.status.as_u16(),
        content_type,
        body: stored_body,
    };
    let completed_at = state.app.clock().now();
    paygate_app::failpoint::hit("idempotency.before_complete");
    if let Err(error) = store
        .idempotency_complete(&scope, lock_token, &stored, completed_at)
        .await
    {
        tracing::warn!(%error, "could not store an idempotent response");
    }
    response_parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Ok(Response::from_parts(response_parts, Body::from(bytes)))
}

fn replay(stored: StoredResponse) -> Response {
    let status = axum::http::StatusCode::from_u16(stored.status).unwrap_or(axum::http::StatusCode::OK);
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(&stored.content_type) {
        response.headers_mut().insert(axum::http::header::CONTENT_TYPE, value);
    }
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Response> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body exceeds {limit} bytes"),
        )
        .into_response()),
        Err(error) => Err(ApiError::new(
            ErrorCode::MalformedJson,
            format!("the request body could not be read: {error}"),
        )
        .into_response()),
    }
}

/// SHA-256 over method, path and canonical body.
pub fn fingerprint(method: &Method, path_and_query: &str, body: &[u8]) -> RequestFingerprint {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(path_and_query.as_bytes());
    hasher.update(b"\n");
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            hasher.update(b"json\n");
            canonical_json(&value, &mut hasher);
        }
        Err(_) => {
            hasher.update(b"raw\n");
            hasher.update(body);
        }
    }
    RequestFingerprint(hasher.finalize().into())
}

/// Writes JSON with object keys sorted, independent of how serde_json orders maps in this build.
fn canonical_json(value: &serde_json::Value, out: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.update(b"{");
            for key in keys {
                out.update(serde_json::to_string(key).unwrap_or_default().as_bytes());
                out.update(b":");
                if let Some(inner) = map.get(key) {
                    canonical_json(inner, out);
                }
                out.update(b",");
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for item in items {
                canonical_json(item, out);
                out.update(b",");
            }
            out.update(b"]");
        }
        scalar => out.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_json_layout_only() {
        let post = Method::POST;
        let a = fingerprint(&post, "/v1/x", br#"{"a":1,"b":[1,2],"c":{"y":1,"x":2}}"#);
        let b = fingerprint(
            &post,
            "/v1/x",
            b"{ \"c\": {\"x\":2, \"y\":1}, \"b\": [1, 2], \"a\": 1 }",
        );
        assert_eq!(a, b);
        let cases: [(&Method, &str, &[u8]); 4] = [
            (&post, "/v1/x", br#"{"a":2,"b":[1,2],"c":{"y":1,"x":2}}"#),
            (&post, "/v1/x", br#"{"a":1,"b":[2,1],"c":{"y":1,"x":2}}"#),
            (&post, "/v1/y", br#"{"a":1,"b":[1,2],"c":{"y":1,"x":2}}"#),
            (&Method::PUT, "/v1/x", br#"{"a":1,"b":[1,2],"c":{"y":1,"x":2}}"#),
        ];
        for (method, path, body) in cases {
            assert_ne!(
                fingerprint(method, path, body),
                a,
                "{path} {}",
                String::from_utf8_lossy(body)
            );
        }
        assert_ne!(fingerprint(&post, "/v1/x", b"a=1"), fingerprint(&post, "/v1/x", b"a=2"));
    }
}
