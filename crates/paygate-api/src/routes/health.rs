//! Liveness, readiness and metrics: unauthenticated, outside `/v1`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::AppState;

/// The process is up.
#[derive(Serialize, ToSchema)]
#[schema(as = Health)]
pub struct HealthBody {
    #[schema(schema_with = ok)]
    status: &'static str,
}

fn ok() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(["ok"])
}

/// The gateway can serve.
#[derive(Serialize, ToSchema)]
#[schema(as = Readiness)]
pub struct ReadyBody {
    #[schema(schema_with = ready)]
    status: &'static str,
    /// `sqlite` or `postgres`.
    #[schema(example = "sqlite")]
    database: &'static str,
}

fn ready() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(["ready"])
}

/// The process is up. Says nothing about dependencies, so an orchestrator never restarts a gateway because the
/// database blinked.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "Operations",
    summary = "Liveness: the process is up", security(()),
    responses((status = 200, description = "Up", body = HealthBody)))]
pub async fn healthz() -> impl IntoResponse {
    Json(HealthBody { status: "ok" })
}

/// The gateway can serve: the database answers (reads and, on SQLite, the writer thread).
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "Operations",
    summary = "Readiness: the database answers", security(()),
    responses((status = 200, description = "Ready", body = ReadyBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let store = state.app.store();
    store.ping().await?;
    Ok(Json(ReadyBody {
        status: "ready",
        database: store.backend().as_str(),
    }))
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "Operations",
    summary = "Prometheus metrics (text exposition format)", security(()),
    responses((status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.app.store().as_ref()),
    )
}
