//! Liveness, readiness and metrics: unauthenticated, outside `/v1`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

/// The process is up. Says nothing about dependencies, so an orchestrator never restarts a gateway because the
/// database blinked.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The gateway can serve: the database answers (reads and, on SQLite, the writer thread).
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let store = state.app.store();
    store.ping().await?;
    Ok(Json(json!({ "status": "ready", "database": store.backend().as_str() })))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.app.store().as_ref()),
    )
}
