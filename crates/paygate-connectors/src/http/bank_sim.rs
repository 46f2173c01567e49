//! The bank simulator: a [`SandboxBank`] behind the JSON-over-HTTP protocol of `BANK-PROTOCOL.md`, with its
//! deposit notifications (입금통보) sent to a registered URL, signed, retried until acknowledged, and subject to the
//! seeded faults of [`NotificationFaults`] (lost, duplicated, delayed; wrong deposit amounts).
//!
//! Bounds: request bodies are capped at [`MAX_BODY_BYTES`]; feed and journal pages at [`MAX_PAGE`]; notifications
//! waiting to be sent or retried at [`BankSimConfig::max_pending_notifications`] (over it, a deposit is still made
//! but its notification is dropped and logged — only the feed finds it, as with a lost one); each attempt has a
//! timeout, and a notification is retried for at most `retry_for_ms`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paygate_domain::bank::Bank;
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::simulator::{error_response, parse, Early, MAX_BODY_BYTES};

mod pages;
use crate::bank::{
    BankJournalEntry, BankRefusal, Deposit, IssueAccount, MakeDeposit, Refund, RefundAnswer, SandboxBank,
};
use crate::bank_notify::{sign, NotificationFaults, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::bank_wire::{DepositNotificationWire, ACK_BODY};

/// Most entries in one feed or journal page (also the default page size).
pub const MAX_PAGE: usize = 1_000;

/// What the bank simulator serves and where it notifies.
#[derive(Clone, Debug)]
pub struct BankSimConfig {
    /// The banks it serves (default: every bank of Toss's table that issues virtual accounts).
    pub banks: Vec<Bank>,
    /// Where deposit notifications go; none: deposits are found through the feed only.
    pub notify_url: Option<String>,
    pub notify_secret: Vec<u8>,
    pub faults: NotificationFaults,
    /// The first retry's wait, doubled after each failed attempt up to `retry_max_ms`.
    pub retry_initial_ms: u32,
    pub retry_max_ms: u32,
    /// How long a notification is retried before the bank gives up on it.
    pub retry_for_ms: u64,
    /// Each attempt's timeout.
    pub attempt_timeout_ms: u32,
    pub max_pending_notifications: usize,
}

impl Default for BankSimConfig {
    fn default() -> BankSimConfig {
        BankSimConfig {
            banks: Bank::virtual_account_issuers().collect(),
            notify_url: None,
            notify_secret: Vec::new(),
            faults: NotificationFaults::default(),
            retry_initial_ms: 1_000,
            retry_max_ms: 60_000,
            retry_for_ms: 24 * 3_600_000,
            attempt_timeout_ms: 5_000,
            max_pending_notifications: 10_000,
        }
    }
}

/// A configured bank simulator. Cheap to clone; clones share the bank.
#[derive(Clone)]
pub struct BankSimulator {
    shared: Arc<Shared>,
}

struct Shared {
    bank: SandboxBank,
    config: BankSimConfig,
    http: reqwest::Client,
    pending: Arc<Semaphore>,
}

impl BankSimulator {
    pub fn new(config: BankSimConfig) -> BankSimulator {
        let bank = SandboxBank::new(config.banks.clone());
        BankSimulator::with_bank(config, bank)
    }

    /// Serves `bank` (a test keeps a clone of it to inspect the journal in-process).
    pub fn with_bank(config: BankSimConfig, bank: SandboxBank) -> BankSimulator {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(u64::from(config.attempt_timeout_ms)))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let pending = Arc::new(Semaphore::new(
            config.max_pending_notifications.min(Semaphore::MAX_PERMITS),
        ));
        BankSimulator {
            shared: Arc::new(Shared {
                bank,
                config,
                http,
                pending,
            }),
        }
    }

    pub fn bank(&self) -> &SandboxBank {
        &self.shared.bank
    }

    /// The routes of `BANK-PROTOCOL.md` built so far, answering 404 for anything else.
    pub fn router(&self) -> Router {
        self.routes().fallback(not_found)
    }

    /// The routes alone, without a fallback: to merge into another router (the gateway serves the in-process
    /// sandbox bank's routes beside its own).
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/bank/healthz", get(healthz))
            .route("/bank/virtual-accounts", post(issue))
            .route("/bank/virtual-accounts/close", post(close))
            .route("/bank/deposits", post(deposit).get(deposit_feed))
            .route("/bank/deposits/return", post(return_deposit))
            .route("/bank/transfers", post(begin_transfer))
            .route("/bank/transfers/debit", post(debit))
            .route("/bank/transfers/inquire", post(inquire_debit))
            .route("/bank/refunds", post(refund))
            .route("/bank/refunds/inquire", post(inquire_refund))
            .route("/bank/journal", get(journal))
            .route("/bank/static/bank.css", get(pages::stylesheet))
            .route("/bank/static/favicon.svg", get(pages::favicon))
            .route(
                "/bank/transfers/{session}/authorize",
                get(pages::authorize_page).post(pages::authorize),
            )
            .route("/bank/transfers/{session}/cancel", post(pages::cancel))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(&self.shared))
    }

    /// Serves on `listener` until `shutdown` resolves. Notifications still waiting are abandoned.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

type SharedState = State<Arc<Shared>>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Refused {
    result: &'static str,
    code: &'static str,
}

fn refused(refusal: BankRefusal) -> Response {
    Json(Refused {
        result: "REFUSED",
        code: refusal.code(),
    })
    .into_response()
}

fn bad_field(field: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        &format!("invalid field {field}"),
    )
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such endpoint; see BANK-PROTOCOL.md",
    )
}

fn money(amount: i64, currency: &str) -> Result<Money, Early> {
    let currency: Currency = currency.parse().map_err(|_| Box::new(bad_field("currency")))?;
    Ok(Money::new(amount, currency))
}

fn bank_code(text: &str) -> Result<Bank, Early> {
    Bank::parse(text)
        .filter(|bank| bank.code() == text)
        .ok_or_else(|| Box::new(bad_field("bankCode")))
}

fn text(field: &str, value: String, max_chars: usize) -> Result<String, Early> {
    let count = value.chars().count();
    if count == 0 || count > max_chars || value.chars().any(char::is_control) {
        return Err(Box::new(bad_field(field)));
    }
    Ok(value)
}

async fn healthz(State(shared): SharedState) -> Response {
    let banks: Vec<&str> = shared.config.banks.iter().map(Bank::code).collect();
    Json(serde_json::json!({"status": "ok", "banks": banks})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssueWire {
    reference: String,
    merchant_id: String,
    bank_code: String,
    amount: i64,
    currency: String,
    holder_name: String,
    expires_at: i64,
}

async fn issue(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<IssueWire>(body).and_then(|wire| {
        Ok(IssueAccount {
            reference: text("reference", wire.reference, 128)?,
            merchant_id: text("merchantId", wire.merchant_id, 64)?,
            bank_code: bank_code(&wire.bank_code)?,
            amount: money(wire.amount, &wire.currency)?,
            holder_name: text("holderName", wire.holder_name, 100)?,
            expires_at: UnixMillis::new(wire.expires_at),
        })
    }) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared.bank.issue(&request) {
        Ok(issued) => Json(serde_json::json!({
            "result": "ISSUED",
            "accountNumber": issued.account_number,
            "bankCode": issued.bank_code.code(),
            "issuedAt": issued.issued_at.as_millis(),
        }))
        .into_response(),
        Err(refusal) => refused(refusal),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloseWire {
    merchant_id: String,
    account_number: String,
}

async fn close(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<CloseWire>(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared.bank.close(&request.merchant_id, &request.account_number) {
        Ok(()) => Json(serde_json::json!({"result": "CLOSED"})).into_response(),
        Err(refusal) => refused(refusal),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DepositWire {
    account_number: String,
    amount: i64,
    currency: String,
    depositor_name: String,
    /// Unix milliseconds; the bank's clock if absent.
    #[serde(default)]
    at: Option<i64>,
    /// Makes a repeated deposit request (a retry) the same deposit, and keys the wrong-amount fault.
    #[serde(default)]
    reference: Option<String>,
}

async fn deposit(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let parsed = parse::<DepositWire>(body).and_then(|wire| {
        let amount = money(wire.amount, &wire.currency)?;
        let reference = match wire.reference {
            Some(reference) => Some(text("reference", reference, 128)?),
            None => None,
        };
        Ok((
            MakeDeposit {
                account_number: text("accountNumber", wire.account_number, 64)?,
                amount,
                depositor_name: text("depositorName", wire.depositor_name, 100)?,
                at: wire.at.map(UnixMillis::new),
            },
            reference,
        ))
    });
    let (mut request, reference) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    if let Some(reference) = &reference {
        request.amount = shared.config.faults.deposited_amount(reference, request.amount);
    }
    match shared.bank.deposit(&request) {
        Ok(made) => {
            Shared::notify(&shared, &made);
            Json(serde_json::json!({
                "result": "ACCEPTED",
                "depositId": made.deposit_id,
                "seq": made.seq,
                "amount": made.amount.amount_minor(),
                "depositedAt": made.deposited_at.as_millis(),
            }))
            .into_response()
        }
        Err(refusal) => refused(refusal),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    #[serde(default)]
    merchant_id: Option<String>,
    #[serde(default)]
    after_seq: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn deposit_feed(
    State(shared): SharedState,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_field("query");
    };
    let limit = query.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    // One merchant's deposits, or (no `merchantId`) the bank's whole feed: what paygate, its one client, reads.
    let deposits = match &query.merchant_id {
        Some(merchant_id) => shared.bank.deposits_after(merchant_id, query.after_seq, limit),
        None => shared.bank.all_deposits_after(query.after_seq, limit),
    };
    let next_seq = deposits.last().map_or(query.after_seq, |d| d.seq);
    let deposits: Vec<DepositNotificationWire> = deposits
        .iter()
        .map(|d| DepositNotificationWire::from_deposit(d, &format!("feed_{}", d.deposit_id)))
        .collect();
    Json(serde_json::json!({"deposits": deposits, "nextSeq": next_seq})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundWire {
    reference: String,
    merchant_id: String,
    bank_code: String,
    account_number: String,
    holder_name: String,
    amount: i64,
    currency: String,
}

async fn refund(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<RefundWire>(body).and_then(|wire| {
        Ok(Refund {
            reference: text("reference", wire.reference, 128)?,
            merchant_id: text("merchantId", wire.merchant_id, 64)?,
            bank_code: bank_code(&wire.bank_code)?,
            account_number: text("accountNumber", wire.account_number, 64)?,
            holder_name: text("holderName", wire.holder_name, 100)?,
            amount: money(wire.amount, &wire.currency)?,
        })
    }) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared.bank.refund(&request) {
        Ok(answer) => refund_answer(&answer),
        Err(refusal) => refused(refusal),
    }
}

fn refund_answer(answer: &RefundAnswer) -> Response {
    match answer {
        RefundAnswer::Done { refund_id, refunded_at } => Json(serde_json::json!({
            "result": "DONE",
            "refundId": refund_id,
            "refundedAt": refunded_at.as_millis(),
        }))
        .into_response(),
        RefundAnswer::Failed { refusal } => {
            Json(serde_json::json!({"result": "FAILED", "code": refusal.code()})).into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InquireWire {
    reference: String,
    merchant_id: String,
}

async fn inquire_refund(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<InquireWire>(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared.bank.inquire_refund(&request.merchant_id, &request.reference) {
        Some(answer) => refund_answer(&answer),
        None => Json(serde_json::json!({"result": "NOT_FOUND"})).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReturnWire {
    merchant_id: String,
    reference: String,
    deposit_id: String,
}

async fn return_deposit(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<ReturnWire>(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared
        .bank
        .return_deposit(&request.merchant_id, &request.reference, &request.deposit_id)
    {
        Ok(answer) => refund_answer(&answer),
        Err(refusal) => refused(refusal),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BeginTransferWire {
    reference: String,
    merchant_id: String,
    bank_code: String,
    amount: i64,
    currency: String,
    return_url: String,
}

async fn begin_transfer(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<BeginTransferWire>(body).and_then(|wire| {
        Ok(crate::bank::BeginTransfer {
            reference: text("reference", wire.reference, 128)?,
            merchant_id: text("merchantId", wire.merchant_id, 64)?,
            bank_code: bank_code(&wire.bank_code)?,
            amount: money(wire.amount, &wire.currency)?,
            return_url: text("returnUrl", wire.return_url, 2_048)?,
        })
    }) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared.bank.begin_transfer(&request) {
        Ok(session) => Json(serde_json::json!({
            "result": "OPENED",
            "sessionId": session.session_id,
            "authorizeUrl": session.authorize_url,
        }))
        .into_response(),
        Err(refusal) => refused(refusal),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebitWire {
    reference: String,
    merchant_id: String,
    authorization: String,
    amount: i64,
    currency: String,
}

fn debit_answer(answer: &crate::bank::DebitAnswer) -> Response {
    match answer {
        crate::bank::DebitAnswer::Done {
            debit_id,
            bank_code,
            account_number,
            holder_name,
            debited_at,
        } => Json(serde_json::json!({
            "result": "DEBITED",
            "debitId": debit_id,
            "bankCode": bank_code.code(),
            "accountNumber": account_number,
            "holderName": holder_name,
            "debitedAt": debited_at.as_millis(),
        }))
        .into_response(),
        crate::bank::DebitAnswer::Failed { refusal } => {
            Json(serde_json::json!({"result": "FAILED", "code": refusal.code()})).into_response()
        }
    }
}

async fn debit(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<DebitWire>(body).and_then(|wire| {
        Ok(crate::bank::Debit {
            reference: text("reference", wire.reference, 128)?,
            merchant_id: text("merchantId", wire.merchant_id, 64)?,
            authorization: text("authorization", wire.authorization, 128)?,
            amount: money(wire.amount, &wire.currency)?,
        })
    }) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared.bank.debit(&request) {
        Ok(answer) => debit_answer(&answer),
        Err(refusal) => refused(refusal),
    }
}

async fn inquire_debit(State(shared): SharedState, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<InquireWire>(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match shared.bank.inquire_debit(&request.merchant_id, &request.reference) {
        Some(answer) => debit_answer(&answer),
        None => Json(serde_json::json!({"result": "NOT_FOUND"})).into_response(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JournalEntryWire {
    seq: u64,
    at: i64,
    kind: &'static str,
    merchant_id: String,
    reference: String,
    account_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
}

impl From<&BankJournalEntry> for JournalEntryWire {
    fn from(entry: &BankJournalEntry) -> JournalEntryWire {
        JournalEntryWire {
            seq: entry.seq,
            at: entry.at.as_millis(),
            kind: entry.kind.as_str(),
            merchant_id: entry.merchant_id.clone(),
            reference: entry.reference.clone(),
            account_number: entry.account_number.clone(),
            amount: entry.amount.map(|a| a.amount_minor()),
            currency: entry.amount.map(|a| a.currency().code().to_owned()),
        }
    }
}

async fn journal(
    State(shared): SharedState,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_field("query");
    };
    let limit = query.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let entries: Vec<JournalEntryWire> = shared
        .bank
        .journal_page(query.after_seq, limit)
        .iter()
        .map(JournalEntryWire::from)
        .collect();
    let next_seq = entries.last().map_or(query.after_seq, |e| e.seq);
    Json(serde_json::json!({"entries": entries, "nextSeq": next_seq})).into_response()
}

impl Shared {
    /// Sends `deposit`'s notification per the fault plan, each copy on its own task, retried until acknowledged.
    fn notify(shared: &Arc<Shared>, deposit: &Deposit) {
        let Some(url) = shared.config.notify_url.clone() else {
            return;
        };
        let plan = shared.config.faults.plan(&deposit.deposit_id);
        for copy in 0..plan.copies {
            let Ok(permit) = Arc::clone(&shared.pending).try_acquire_owned() else {
                tracing::warn!(deposit = %deposit.deposit_id, "too many notifications pending; this one is dropped");
                return;
            };
            // The first copy keeps the deposit's notification ID; duplicates get their own, as banks send them.
            let notification_id = if copy == 0 {
                format!("ntf_{}", deposit.deposit_id)
            } else {
                format!("ntf_{}_{copy}", deposit.deposit_id)
            };
            let body = match serde_json::to_vec(&DepositNotificationWire::from_deposit(deposit, &notification_id)) {
                Ok(body) => body,
                Err(_) => return,
            };
            let shared = Arc::clone(shared);
            let url = url.clone();
            let delay = u64::from(plan.delay_ms);
            tokio::spawn(async move {
                let _permit = permit;
                tokio::time::sleep(Duration::from_millis(delay)).await;
                shared.deliver(&url, &body).await;
            });
        }
    }

    /// Posts one notification until it is acknowledged or `retry_for_ms` has passed.
    async fn deliver(&self, url: &str, body: &[u8]) {
        let config = &self.config;
        let give_up = tokio::time::Instant::now() + Duration::from_millis(config.retry_for_ms);
        let mut wait = u64::from(config.retry_initial_ms);
        loop {
            let timestamp = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            )
            .unwrap_or(i64::MAX);
            let attempt = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, sign(&config.notify_secret, timestamp, body))
                .body(body.to_vec())
                .send()
                .await;
            let acknowledged = match attempt {
                Ok(response) if response.status() == StatusCode::OK => {
                    response.text().await.is_ok_and(|text| acknowledges(&text))
                }
                _ => false,
            };
            if acknowledged {
                return;
            }
            let next = tokio::time::Instant::now() + Duration::from_millis(wait);
            if next > give_up {
                tracing::warn!(url, "deposit notification abandoned after its retry period");
                return;
            }
            tokio::time::sleep_until(next).await;
            wait = wait.saturating_mul(2).min(u64::from(config.retry_max_ms));
        }
    }
}

/// Whether a body is the protocol's acknowledgement (`{"result":"OK"}`, whitespace aside).
fn acknowledges(text: &str) -> bool {
    let ack: Result<serde_json::Value, _> = serde_json::from_str(ACK_BODY);
    let got: Result<serde_json::Value, _> = serde_json::from_str(text);
    matches!((ack, got), (Ok(a), Ok(b)) if a == b)
}
