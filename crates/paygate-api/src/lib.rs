//! paygate's HTTP edge.
//!
//! Routes parse requests into use-case calls on [`paygate_app::App`] and render the results; they hold no
//! business rules. The middleware stack gives every response a request ID, a stable error object, metrics and
//! bounds (body size, time, requests in flight); `/v1` adds key authentication, rate limiting and idempotency.

pub mod config;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::Router;
use tokio::sync::Semaphore;

pub use config::ApiConfig;
use error::{ApiError, ErrorCode};
use middleware::metrics::Metrics;
use middleware::rate_limit::{KeyLimiter, Limit};

/// What every handler and middleware can reach.
#[derive(Clone)]
pub struct AppState {
    pub app: paygate_app::App,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(app: paygate_app::App, config: ApiConfig) -> Result<AppState, prometheus::Error> {
        Ok(AppState {
            app,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()?),
        })
    }
}

/// The authenticated API under `/v1`, without middleware. Tests may merge their own routes before layering.
/// Its routes come from the OpenAPI document's router ([`openapi::v1_router`]), so each is documented.
pub fn v1_routes() -> Router<AppState> {
    openapi::v1_router().split_for_parts().0
}

/// The whole gateway: public routes plus `v1`, wrapped in the full middleware stack.
pub fn router(state: AppState) -> Router {
    layered(v1_routes(), state)
}

/// Wraps `/v1`-style routes in authentication, rate limiting and idempotency, adds the public routes, and wraps
/// everything in the edge layers.
pub fn layered(v1: Router<AppState>, state: AppState) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    let config = state.config.clone();
    let limiter = KeyLimiter::new(
        Limit {
            per_period: config.rate_limit.per_key_per_second,
            period: Duration::from_secs(1),
            burst: config.rate_limit.burst,
        },
        config.rate_limit.keys_tracked_max,
    );
    // Layers run bottom-up: the last `.layer` is the outermost.
    // CORS wraps everything (outside routing and authentication), so a browser's preflight — an OPTIONS request
    // without credentials — is answered for every route. Any origin may call:
    // paygate uses no cookies, every call carries a key, and client keys can only start payments.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::PATCH,
            http::Method::DELETE,
        ])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            http::HeaderName::from_static("idempotency-key"),
            http::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            http::HeaderName::from_static("x-request-id"),
            http::HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Duration::from_secs(600));
    let v1 = v1
        .layer(from_fn_with_state(state.clone(), middleware::idempotency::enforce))
        .layer(from_fn_with_state(limiter, middleware::rate_limit::limit))
        .layer(from_fn_with_state(
            middleware::auth::AuthLayer::new(state.clone()),
            middleware::auth::authenticate,
        ));
    // The hosted pages and their assets, documented in the OpenAPI document too.
    let public = Router::new()
        .merge(openapi::pages_router().split_for_parts().0)
        // Probes, metrics and the OpenAPI document (documented in it), and the reference page.
        .merge(openapi::public_router().split_for_parts().0)
        .merge(openapi::reference_page());
    let in_flight = Arc::new(Semaphore::new(config.http.in_flight_max));
    let timeout = Duration::from_millis(u64::from(config.http.request_timeout_ms));
    public
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.http.body_max_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::edge::panic_response,
        ))
        .layer(from_fn_with_state(timeout, middleware::edge::timeout))
        .layer(from_fn_with_state(in_flight, middleware::edge::shed_load))
        .layer(from_fn_with_state(state.metrics.clone(), middleware::metrics::track))
        .layer(from_fn(middleware::edge::request_id))
        .layer(cors)
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(ErrorCode::NotFound, "no such endpoint; see docs/api.md for the routes")
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that HTTP method",
    )
}

/// Serves until `shutdown` resolves, then stops accepting, lets requests in flight finish for up to
/// `config.http.shutdown_grace_ms`, and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    config: &ApiConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Our own accept loop over hyper's HTTP/1 server rather than `axum::serve`: it bounds how long a client may
    // take to send its headers (slow-loris), and an idle connection costs a few KiB (axum::serve's generic
    // connection held ~200 KiB each; see BENCHMARKS.md).
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = Duration::from_millis(u64::from(config.http.header_read_timeout_ms.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Handlers and middleware see the peer as axum's `ConnectInfo` (failed-authentication budgets use it).
        let app = tower::Layer::layer(&axum::Extension(axum::extract::ConnectInfo(peer)), app.clone());
        let service = hyper_util::service::TowerToHyperService::new(app);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = Duration::from_millis(u64::from(config.http.shutdown_grace_ms));
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_ms = config.http.shutdown_grace_ms,
            "requests still running after the grace period; stopping anyway"
        );
    }
    Ok(())
}
