//! `Idempotency-Key` on POST, read at the edge: the header is checked and the request fingerprinted, and the
//! result ([`IdempotentRequest`]) handed to the handler, which passes it to its use case. This layer writes nothing:
//! the use case claims the key in the same transaction as the change it makes and stores the answer with its
//! outcome (`paygate_app::idempotency`), so a key is claimed exactly when that change committed.
//!
//! What counts as "the same request": method, path with query, and the body — JSON bodies compared after
//! canonicalisation (object keys sorted, insignificant whitespace dropped), other bodies byte for byte.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use paygate_app::idempotency::{Answer, Idempotent, IdempotentRequest, Render};
use paygate_domain::idempotency::{IdempotencyKey, RequestFingerprint};
use paygate_store::StoredResponse;
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
    match read(&state, &header, request).await {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    }
}

/// Parses the header and fingerprints the request; the request goes on with the result in its extensions.
async fn read(state: &AppState, header: &HeaderValue, request: Request) -> Result<Request, Response> {
    let key = header
        .to_str()
        .ok()
        .map(IdempotencyKey::parse)
        .unwrap_or(Err(paygate_domain::idempotency::IdempotencyKeyError::BadCharacter))
        .map_err(|e| ApiError::new(ErrorCode::InvalidIdempotencyKey, e.to_string()).into_response())?;
    let (mut parts, body) = request.into_parts();
    let body = read_limited(body, state.config.http.body_max_bytes).await?;
    let fingerprint = fingerprint(
        &parts.method,
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        &body,
    );
    parts.extensions.insert(IdempotentRequest { key, fingerprint });
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// The request's `Idempotency-Key`, if it came with one.
pub struct IdempotencyHeader(pub Option<IdempotentRequest>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(IdempotencyHeader(parts.extensions.get::<IdempotentRequest>().cloned()))
    }
}

impl IdempotencyHeader {
    /// The key with the renderer the use case stores the answer with.
    pub fn with<T, E>(self, render: Render<T, E>) -> Option<Idempotent<T, E>> {
        self.0.map(|request| Idempotent { request, render })
    }
}

/// A use case's result as the edge answers it: a JSON body with its status, or an error object.
pub type Rendered = Result<(axum::http::StatusCode, Vec<u8>), ApiError>;

/// A JSON answer.
pub fn json<T: serde::Serialize>(status: axum::http::StatusCode, value: &T) -> Rendered {
    serde_json::to_vec(value)
        .map(|body| (status, body))
        .map_err(|e| ApiError::internal(&e))
}

/// The renderer a use case stores its answer with; the same function renders the live response.
pub fn renderer<T, E>(render: impl Fn(&Result<T, E>) -> Rendered + Send + Sync + 'static) -> Render<T, E> {
    Arc::new(move |result| stored(render(result)))
}

/// The answer to store: an error's body as the outer layer renders it, without the request ID (it differs on
/// every request).
fn stored(rendered: Rendered) -> StoredResponse {
    match rendered {
        Ok((status, body)) => StoredResponse {
            status: status.as_u16(),
            content_type: "application/json".to_owned(),
            body,
        },
        Err(error) => StoredResponse {
            status: error.code.status().as_u16(),
            content_type: "application/json".to_owned(),
            body: serde_json::to_vec(&error.body()).unwrap_or_default(),
        },
    }
}

/// Sends a use case's answer: its own result, rendered, or the first request's stored answer.
pub fn respond<T, E>(answer: Result<Answer<T>, E>, render: impl Fn(&Result<T, E>) -> Rendered) -> Response {
    let rendered = match answer {
        Ok(Answer::Replay(stored)) => return replay(stored),
        Ok(Answer::Fresh(value)) => render(&Ok(value)),
        Err(error) => render(&Err(error)),
    };
    match rendered {
        Ok((status, body)) => (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => error.into_response(),
    }
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
