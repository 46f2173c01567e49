//! The outermost layer: request IDs in and out, the latency header, error bodies with the request ID,
//! load shedding and the request timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paygate_domain::id::RequestId;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::error::{ApiError, ErrorBody, ErrorCode};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's ID, in the request's extensions for handlers and logs.
#[derive(Clone, Debug)]
pub struct RequestIdValue(pub String);

/// A client-supplied request ID is kept if it is short and plain; otherwise paygate makes its own, so a log line
/// can never be forged or bloated through this header.
fn accept_client_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| text.to_owned())
}

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(accept_client_id)
        .unwrap_or_else(|| {
            RequestId::new(
                paygate_app::Clock::now(&paygate_app::SystemClock),
                paygate_app::random_bytes(),
            )
            .to_string()
        });
    request.extensions_mut().insert(RequestIdValue(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Some(body) = response.extensions_mut().remove::<ErrorBody>() {
        let body = ErrorBody {
            request_id: Some(id.clone()),
            ..body
        };
        let _entered = span.enter();
        tracing::info!(status = response.status().as_u16(), code = body.code, "request failed");
        let (parts, _) = response.into_parts();
        let json = serde_json::to_vec(&body).unwrap_or_default();
        response = Response::from_parts(parts, Body::from(json));
        response.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    // Like Hyperswitch's latency header: the time spent inside paygate, so merchants can tell it from the network.
    let micros = started.elapsed().as_micros();
    if let Ok(value) = HeaderValue::from_str(&format!("gateway;dur={}.{:03}", micros / 1000, micros % 1000)) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("server-timing"), value);
    }
    response
}

/// Refuses work beyond a fixed number of requests in flight instead of queueing without bound.
pub async fn shed_load(State(permits): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            let mut error = ApiError::new(
                ErrorCode::ServiceOverloaded,
                "the gateway is at capacity; retry shortly",
            );
            error.retry_after_secs = Some(1);
            error.into_response()
        }
    }
}

/// Bounds every request's time inside paygate.
pub async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request took too long inside the gateway",
        )
        .into_response(),
    }
}

/// Turns a panic in a handler into the standard 500 error object.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal(&"a handler panicked").into_response()
}
