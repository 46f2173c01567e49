//! The acquirer simulator: several [`SandboxAcquirer`]s behind the JSON-over-HTTP protocol of PROTOCOL.md, with
//! latency and out-of-process fault injection. paygate's black-box tests run it as a separate server so that
//! real sockets, real timeouts and real lost answers exercise the gateway's unknown-outcome handling.
//!
//! Out of process, a fault has to look like what a network does, not like a Rust error:
//! - timeout: the request is not applied and the simulator holds it for `hang_ms` (longer than the client's
//!   timeout), then closes the connection;
//! - lost answer: the request is applied, then the connection is closed without a complete response (in practice
//!   before the status line), so the client fails right away with "connection closed before message completed";
//! - system error: HTTP 503 with the protocol's JSON error body; not applied.
//!
//! The test cards that fail on their own (`…0045`, `…0052`, `…0060`) take the same paths: the sandbox's
//! `Timeout` becomes a held-then-closed request, its `SystemError` a 503.
//!
//! Bounds: request bodies are capped at [`MAX_BODY_BYTES`], requests in flight at
//! [`SimulatorConfig::max_in_flight`] (over it: 503, not applied), each journal at
//! [`SimulatorConfig::journal_capacity`], journal pages at [`MAX_JOURNAL_PAGE`] entries, and shutdown waits for
//! held requests at most `latency + jitter + hang + 1 s`.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::wire::{
    ApproveAnswer, ApproveWire, CancelAnswer, CancelWire, ErrorWire, HealthWire, InquireWire, InquiryAnswer,
    JournalEntryWire, JournalPageWire, JournalQuery, ReverseAnswer, ReverseWire, VerifyAnswer, VerifyWire, REVERSE_OK,
};
use crate::sandbox::{
    builtin_ids, Fault, FaultPlan, JournalBound, Operation, SandboxAcquirer, SIMULATOR_JOURNAL_CAPACITY,
};
use crate::{AcquirerId, ConnectorError};

/// Largest request body accepted, in bytes; larger ones get 413 and are not processed. A real approve body is
/// well under 1 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most journal entries in one `GET /{acquirer}/journal` page (also the default page size).
pub const MAX_JOURNAL_PAGE: usize = 10_000;

/// Salt for the latency-jitter draw, so it is independent of the fault draw of the same call.
const JITTER_SALT: u64 = 0x6A69_7474_6572;

/// What the simulator serves and how it misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// One independent sandbox (own state, own journal) per id, served under `/{id}/…`.
    pub acquirers: Vec<AcquirerId>,
    /// Added to every operation before it is processed.
    pub latency_ms: u32,
    /// Up to this much more, drawn per call from the seeded PRNG.
    pub latency_jitter_ms: u32,
    pub timeout_per_mille: u16,
    pub lost_answer_per_mille: u16,
    pub system_error_per_mille: u16,
    pub seed: u64,
    /// How long a "timed out" request is held before the connection is closed. Must exceed the client's request
    /// timeout, or the client sees a lost answer instead of a timeout.
    pub hang_ms: u32,
    /// Requests processed at once; more are answered 503 (not applied) rather than queued without bound.
    pub max_in_flight: usize,
    /// Journal entries per acquirer (see the sandbox's "Bounds").
    pub journal_capacity: usize,
}

impl Default for SimulatorConfig {
    fn default() -> SimulatorConfig {
        SimulatorConfig {
            acquirers: builtin_ids(),
            latency_ms: 0,
            latency_jitter_ms: 0,
            timeout_per_mille: 0,
            lost_answer_per_mille: 0,
            system_error_per_mille: 0,
            seed: 0,
            hang_ms: 30_000,
            max_in_flight: 1024,
            journal_capacity: SIMULATOR_JOURNAL_CAPACITY,
        }
    }
}

impl SimulatorConfig {
    pub fn fault_plan(&self) -> FaultPlan {
        FaultPlan {
            timeout_per_mille: self.timeout_per_mille,
            lost_answer_per_mille: self.lost_answer_per_mille,
            system_error_per_mille: self.system_error_per_mille,
            seed: self.seed,
        }
    }
}

/// A configured simulator, before it serves: lets a test (or the binary) keep handles on the sandboxes.
#[derive(Clone, Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    acquirers: BTreeMap<String, Arc<SandboxAcquirer>>,
    config: SimulatorConfig,
    permits: Arc<Semaphore>,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Simulator {
        let plan = config.fault_plan();
        let acquirers = config
            .acquirers
            .iter()
            .map(|id| {
                let sandbox = SandboxAcquirer::with_faults(id.clone(), plan)
                    .with_journal_bound(JournalBound::Complete(config.journal_capacity));
                (id.as_str().to_owned(), Arc::new(sandbox))
            })
            .collect();
        let permits = Arc::new(Semaphore::new(config.max_in_flight.min(Semaphore::MAX_PERMITS)));
        Simulator {
            shared: Arc::new(Shared {
                acquirers,
                config,
                permits,
            }),
        }
    }

    /// The sandbox behind `/{id}/…`, to inspect its journal in-process.
    pub fn acquirer(&self, id: &AcquirerId) -> Option<Arc<SandboxAcquirer>> {
        self.shared.acquirers.get(id.as_str()).cloned()
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.shared.config
    }

    /// The routes of PROTOCOL.md.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/{acquirer}/healthz", get(acquirer_healthz))
            .route("/{acquirer}/approve", post(approve))
            .route("/{acquirer}/cancel", post(cancel))
            .route("/{acquirer}/reverse", post(reverse))
            .route("/{acquirer}/inquire", post(inquire))
            .route("/{acquirer}/verify", post(verify))
            .route("/{acquirer}/journal", get(journal))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(&self.shared))
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting and lets requests in flight finish for
    /// a bounded time (see the module's "Bounds").
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let config = &self.shared.config;
        let grace_ms = u64::from(config.latency_ms)
            .saturating_add(u64::from(config.latency_jitter_ms))
            .saturating_add(u64::from(config.hang_ms))
            .saturating_add(1000);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // axum wants a `Send + 'static` signal; the caller's `shutdown` need not be, so it is awaited here and
        // relayed through a channel.
        let server = axum::serve(listener, self.router()).with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        });
        let mut server = std::pin::pin!(server.into_future());
        let shutdown = std::pin::pin!(shutdown);
        tokio::select! {
            result = &mut server => return result,
            () = shutdown => {}
        }
        let _ = stop_tx.send(());
        match tokio::time::timeout(Duration::from_millis(grace_ms), server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    grace_ms,
                    "simulator requests still open after the grace period; stopping anyway"
                );
                Ok(())
            }
        }
    }
}

/// Serves `config.acquirers` on `listener` until `shutdown` resolves. See [`Simulator`] to keep handles on the
/// sandboxes.
pub async fn run_simulator(
    listener: tokio::net::TcpListener,
    config: SimulatorConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Simulator::new(config).serve(listener, shutdown).await
}

// ---------------------------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------------------------

type SharedState = State<Arc<Shared>>;

/// An answer given before the operation runs (unknown acquirer, bad body, overload); boxed because a `Response`
/// is large and these paths are rare.
pub(crate) type Early = Box<Response>;

async fn healthz(State(shared): SharedState) -> Response {
    Json(HealthWire {
        status: "ok".to_owned(),
        acquirers: shared.acquirers.keys().cloned().collect(),
    })
    .into_response()
}

async fn acquirer_healthz(State(shared): SharedState, Path(acquirer): Path<String>) -> Response {
    match shared.acquirers.get(&acquirer) {
        Some(_) => Json(HealthWire {
            status: "ok".to_owned(),
            acquirers: vec![acquirer],
        })
        .into_response(),
        None => unknown_acquirer(),
    }
}

async fn approve(
    State(shared): SharedState,
    Path(acquirer): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (sandbox, _permit) = match shared.admit(&acquirer) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let request = match parse::<ApproveWire>(body).and_then(|wire| wire.into_request().map_err(bad_field)) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let reference = request.reference.clone();
    shared
        .perform(Operation::Approve, &sandbox, &reference, |sandbox| {
            sandbox
                .approve_now(&request)
                .map(|outcome| ApproveAnswer::from(&outcome))
        })
        .await
}

async fn cancel(
    State(shared): SharedState,
    Path(acquirer): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (sandbox, _permit) = match shared.admit(&acquirer) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let request = match parse::<CancelWire>(body).and_then(|wire| wire.into_request().map_err(bad_field)) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let reference = request.reference.clone();
    shared
        .perform(Operation::Cancel, &sandbox, &reference, |sandbox| {
            sandbox.cancel_now(&request).map(|outcome| CancelAnswer::from(&outcome))
        })
        .await
}

async fn reverse(
    State(shared): SharedState,
    Path(acquirer): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (sandbox, _permit) = match shared.admit(&acquirer) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let request = match parse::<ReverseWire>(body).and_then(|wire| wire.check().map_err(bad_field).map(|()| wire)) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    shared
        .perform(Operation::Reverse, &sandbox, &request.approval_reference, |sandbox| {
            sandbox
                .reverse_now(&request.approval_reference, &request.merchant_id)
                .map(|()| ReverseAnswer {
                    result: REVERSE_OK.to_owned(),
                })
        })
        .await
}

async fn inquire(
    State(shared): SharedState,
    Path(acquirer): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (sandbox, _permit) = match shared.admit(&acquirer) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let request = match parse::<InquireWire>(body).and_then(|wire| wire.check().map_err(bad_field).map(|()| wire)) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    shared
        .perform(Operation::Inquire, &sandbox, &request.reference, |sandbox| {
            Ok(InquiryAnswer::from(
                &sandbox.inquire_now(&request.reference, &request.merchant_id),
            ))
        })
        .await
}

async fn verify(
    State(shared): SharedState,
    Path(acquirer): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (sandbox, _permit) = match shared.admit(&acquirer) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let request = match parse::<VerifyWire>(body).and_then(|wire| wire.into_request().map_err(bad_field)) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let reference = request.reference.clone();
    shared
        .perform(Operation::Verify, &sandbox, &reference, |sandbox| {
            sandbox.verify_now(&request).map(|outcome| VerifyAnswer::from(&outcome))
        })
        .await
}

async fn journal(
    State(shared): SharedState,
    Path(acquirer): Path<String>,
    query: Result<Query<JournalQuery>, QueryRejection>,
) -> Response {
    let Some(sandbox) = shared.acquirers.get(&acquirer) else {
        return unknown_acquirer();
    };
    let Ok(Query(query)) = query else {
        return error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "invalid afterSeq or limit");
    };
    let limit = query.limit.unwrap_or(MAX_JOURNAL_PAGE).clamp(1, MAX_JOURNAL_PAGE);
    // One more than asked for tells whether another page follows without a second lock.
    let mut entries = sandbox.journal_page(query.after_seq, limit.saturating_add(1));
    let next_after_seq = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|entry| entry.seq)
    } else {
        None
    };
    Json(JournalPageWire {
        acquirer,
        entries: entries.iter().map(JournalEntryWire::from).collect(),
        next_after_seq,
    })
    .into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint; see PROTOCOL.md")
}

impl Shared {
    /// Finds the sandbox and takes an in-flight permit, or answers 404 / 503 (neither applies anything).
    fn admit(&self, acquirer: &str) -> Result<(Arc<SandboxAcquirer>, OwnedSemaphorePermit), Early> {
        let Some(sandbox) = self.acquirers.get(acquirer) else {
            return Err(Box::new(unknown_acquirer()));
        };
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return Err(Box::new(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "SYSTEM_ERROR",
                "too many requests in flight",
            )));
        };
        Ok((Arc::clone(sandbox), permit))
    }

    /// Waits the configured latency, applies the fault plan, runs `apply` when the plan lets it, and turns the
    /// result into what the network would show.
    async fn perform<T: Serialize>(
        &self,
        operation: Operation,
        sandbox: &SandboxAcquirer,
        reference: &str,
        apply: impl FnOnce(&SandboxAcquirer) -> Result<T, ConnectorError>,
    ) -> Response {
        let plan = sandbox.fault_plan();
        let jitter_max = u64::from(self.config.latency_jitter_ms);
        let attempt = if plan.is_active() || jitter_max > 0 {
            sandbox.next_attempt(operation, reference)
        } else {
            0
        };
        let jitter = match jitter_max {
            0 => 0,
            max => plan.draw(reference, operation, attempt, JITTER_SALT) % (max + 1),
        };
        let delay = u64::from(self.config.latency_ms).saturating_add(jitter);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }

        let result = match plan.decide(reference, operation, attempt) {
            None => apply(sandbox),
            Some(Fault::Timeout) => Err(ConnectorError::Timeout),
            Some(Fault::SystemError) => Err(ConnectorError::SystemError("simulated system error".to_owned())),
            Some(Fault::LostAnswer) => {
                let _applied = apply(sandbox);
                Err(ConnectorError::LostAnswer(String::new()))
            }
        };
        match result {
            Ok(answer) => Json(answer).into_response(),
            Err(ConnectorError::Timeout) => {
                tokio::time::sleep(Duration::from_millis(u64::from(self.config.hang_ms))).await;
                cut_connection()
            }
            Err(ConnectorError::LostAnswer(_)) => cut_connection(),
            Err(ConnectorError::SystemError(message) | ConnectorError::Unreachable(message)) => {
                error_response(StatusCode::SERVICE_UNAVAILABLE, "SYSTEM_ERROR", &message)
            }
        }
    }
}

/// Reads and parses a JSON body. The error never echoes the body: it may hold a card number.
pub(crate) fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Early> {
    let bytes = body.map_err(|rejection| {
        Box::new(if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BODY_TOO_LARGE",
                "request body too large",
            )
        } else {
            error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "unreadable request body")
        })
    })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        // serde_json's own message can quote the offending value; the position is enough to debug a client.
        let message = format!("malformed JSON body at line {} column {}", error.line(), error.column());
        Box::new(error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message))
    })
}

fn bad_field(field: String) -> Early {
    Box::new(error_response(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        &format!("invalid field {field}"),
    ))
}

fn unknown_acquirer() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "UNKNOWN_ACQUIRER",
        "no such acquirer on this simulator",
    )
}

pub(crate) fn error_response(status: StatusCode, error: &str, message: &str) -> Response {
    let body = ErrorWire {
        error: error.to_owned(),
        message: message.to_owned(),
    };
    (status, Json(body)).into_response()
}

/// A response whose body fails before its first byte: hyper then aborts the connection, so the client reads a
/// truncated answer. This is the closest a handler can get to "the answer never came back" while still having
/// applied the request, and it fails the client immediately instead of after a timeout.
fn cut_connection() -> Response {
    Response::new(Body::new(AbortBody))
}

struct AbortBody;

impl HttpBody for AbortBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "simulated lost answer",
        ))))
    }
}
