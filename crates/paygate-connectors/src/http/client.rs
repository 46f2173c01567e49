//! [`HttpAcquirer`]: the [`Acquirer`] that speaks PROTOCOL.md over HTTP.
//!
//! The whole point of this connector is the error mapping, because paygate decides from it whether money may have
//! moved ([`ConnectorError::outcome`]):
//! - no connection could be made → [`ConnectorError::Unreachable`] (nothing was sent);
//! - the request went out but the client's timeout fired → [`ConnectorError::Timeout`];
//! - the connection broke, the body was cut or unreadable, or the status is not one the protocol defines →
//!   [`ConnectorError::LostAnswer`];
//! - 503 / 400 / 404 / 413 with the protocol's JSON error body → [`ConnectorError::SystemError`]: the simulator
//!   says it did not process the request.
//!
//! Request bodies carry card data, so they are never logged, and nothing here formats a body into an error.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{
    ApproveAnswer, ApproveWire, CancelAnswer, CancelWire, ErrorWire, HealthWire, InquireWire, InquiryAnswer,
    JournalPageWire, ReverseAnswer, ReverseWire, VerifyAnswer, VerifyWire,
};
use crate::sandbox::JournalEntry;
use crate::{
    Acquirer, AcquirerId, ApproveOutcome, ApproveRequest, CancelOutcome, CancelRequest, ConnectorError, InquiryOutcome,
    VerifyOutcome, VerifyRequest,
};

/// Largest operation answer read, in bytes; a larger one is treated as unreadable (lost).
pub(super) const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Largest journal page read, in bytes (a full page of 10,000 entries is a few MB).
const MAX_JOURNAL_PAGE_BYTES: usize = 64 * 1024 * 1024;
/// Time allowed for one journal page: a reconciliation read of megabytes, not a payment call, so the (short)
/// payment timeout does not apply.
const JOURNAL_PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest error message kept from the server, in characters.
const MAX_ERROR_MESSAGE_CHARS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpAcquirerConfig {
    /// Time to establish the TCP connection; past it the call is `Unreachable` (nothing was sent). Keep it at or
    /// below `request_timeout_ms`.
    pub connect_timeout_ms: u32,
    /// Time for the whole exchange; past it the call is `Timeout` (the outcome is unknown).
    pub request_timeout_ms: u32,
    /// Idle keep-alive connections kept to the acquirer.
    pub pool_max_idle: usize,
}

impl Default for HttpAcquirerConfig {
    fn default() -> HttpAcquirerConfig {
        HttpAcquirerConfig {
            connect_timeout_ms: 1_000,
            request_timeout_ms: 10_000,
            pool_max_idle: 32,
        }
    }
}

/// Why an [`HttpAcquirer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpAcquirerError {
    #[error("invalid acquirer base URL: {0}")]
    InvalidBaseUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// An acquirer reached over the sandbox HTTP protocol at `{base_url}/{id}/…`.
#[derive(Clone, Debug)]
pub struct HttpAcquirer {
    id: AcquirerId,
    /// `{base_url}/{id}`, without a trailing slash.
    endpoint: String,
    client: reqwest::Client,
}

impl HttpAcquirer {
    /// `base_url` is the simulator's root, e.g. `http://127.0.0.1:7000`; this acquirer's routes live under
    /// `{base_url}/{id}/`. Plain `http` only: the build carries no TLS stack.
    pub fn new(id: AcquirerId, base_url: &str, config: HttpAcquirerConfig) -> Result<HttpAcquirer, HttpAcquirerError> {
        let url = Url::parse(base_url).map_err(|error| HttpAcquirerError::InvalidBaseUrl(error.to_string()))?;
        if url.scheme() != "http" || url.host_str().is_none() {
            return Err(HttpAcquirerError::InvalidBaseUrl(
                "expected an http:// URL with a host".to_owned(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(HttpAcquirerError::InvalidBaseUrl(
                "no query or fragment allowed".to_owned(),
            ));
        }
        let client = build_client(config)?;
        let endpoint = format!("{}/{}", url.as_str().trim_end_matches('/'), id.as_str());
        Ok(HttpAcquirer { id, endpoint, client })
    }

    /// The acquirer's whole journal (`GET /{id}/journal`, every page), for reconciliation in tests.
    pub async fn journal(&self) -> Result<Vec<JournalEntry>, ConnectorError> {
        let mut entries = Vec::new();
        let mut after_seq = 0_u64;
        loop {
            let url = format!("{}/journal?afterSeq={after_seq}", self.endpoint);
            let request = self.client.get(url).timeout(JOURNAL_PAGE_TIMEOUT);
            let page: JournalPageWire = exchange(request, MAX_JOURNAL_PAGE_BYTES).await?;
            for wire in page.entries {
                let entry = wire
                    .into_entry()
                    .map_err(|field| ConnectorError::LostAnswer(format!("unreadable journal entry field {field}")))?;
                entries.push(entry);
            }
            match page.next_after_seq {
                // A page that does not advance would loop forever; treat it as a broken answer.
                Some(next) if next > after_seq => after_seq = next,
                Some(_) => return Err(ConnectorError::LostAnswer("journal paging did not advance".to_owned())),
                None => return Ok(entries),
            }
        }
    }

    /// `GET /{id}/healthz`.
    pub async fn health(&self) -> Result<(), ConnectorError> {
        let request = self.client.get(format!("{}/healthz", self.endpoint));
        let _: HealthWire = exchange(request, MAX_ANSWER_BYTES).await?;
        Ok(())
    }

    async fn post<B: Serialize, R: DeserializeOwned>(&self, operation: &str, body: &B) -> Result<R, ConnectorError> {
        // Encoded here rather than by reqwest so that an encoding failure is clearly "nothing sent".
        let bytes = serde_json::to_vec(body)
            .map_err(|_| ConnectorError::Unreachable("could not encode the request".to_owned()))?;
        let request = self
            .client
            .post(format!("{}/{operation}", self.endpoint))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        exchange(request, MAX_ANSWER_BYTES).await
    }
}

/// The HTTP client of a sandbox connector (acquirer or bank), bounded by `config`.
pub(super) fn build_client(config: HttpAcquirerConfig) -> Result<reqwest::Client, HttpAcquirerError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(u64::from(config.connect_timeout_ms)))
        .timeout(Duration::from_millis(u64::from(config.request_timeout_ms)))
        .pool_max_idle_per_host(config.pool_max_idle)
        // Shorter than any sensible server keep-alive, so a reused connection is rarely one the server is just
        // closing (which would turn a healthy call into a lost answer).
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| HttpAcquirerError::Client(error.to_string()))
}

/// Sends `request` and reads a JSON answer of at most `limit` bytes, mapping every failure as the module says.
pub(super) async fn exchange<R: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<R, ConnectorError> {
    let mut response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(ConnectorError::LostAnswer(format!("answer larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    match status {
        StatusCode::OK => {
            serde_json::from_slice(&body).map_err(|_| ConnectorError::LostAnswer("unreadable answer body".to_owned()))
        }
        StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::BAD_REQUEST
        | StatusCode::NOT_FOUND
        | StatusCode::PAYLOAD_TOO_LARGE => match serde_json::from_slice::<ErrorWire>(&body) {
            // The protocol's error body is the acquirer's statement that it did not process the request.
            Ok(error) => Err(ConnectorError::SystemError(format!(
                "{status} {}: {}",
                truncate(&error.error),
                truncate(&error.message)
            ))),
            // Without it, the status may come from anything between us and the acquirer: unknown outcome.
            Err(_) => Err(ConnectorError::LostAnswer(format!(
                "unexpected {status} without an error body"
            ))),
        },
        other => Err(ConnectorError::LostAnswer(format!("unexpected status {other}"))),
    }
}

/// Maps a reqwest failure by how far the request got.
fn transport_error(error: reqwest::Error) -> ConnectorError {
    let description = describe(&error);
    if error.is_connect() {
        // Checked first: a connect timeout is also a timeout, but nothing was sent.
        ConnectorError::Unreachable(description)
    } else if error.is_timeout() {
        ConnectorError::Timeout
    } else if error.is_builder() {
        ConnectorError::Unreachable(description)
    } else {
        ConnectorError::LostAnswer(description)
    }
}

/// The error and its causes on one line (reqwest's `Display` alone hides the interesting part). Mentions the URL,
/// never a body.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_ERROR_MESSAGE_CHARS).collect()
}

#[async_trait]
impl Acquirer for HttpAcquirer {
    fn id(&self) -> &AcquirerId {
        &self.id
    }

    async fn approve(&self, request: &ApproveRequest) -> Result<ApproveOutcome, ConnectorError> {
        let answer: ApproveAnswer = self.post("approve", &ApproveWire::from_request(request)).await?;
        Ok(answer.into())
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<CancelOutcome, ConnectorError> {
        let answer: CancelAnswer = self.post("cancel", &CancelWire::from_request(request)).await?;
        Ok(answer.into())
    }

    async fn reverse(&self, approval_reference: &str, acquirer_merchant_id: &str) -> Result<(), ConnectorError> {
        let body = ReverseWire {
            approval_reference: approval_reference.to_owned(),
            merchant_id: acquirer_merchant_id.to_owned(),
        };
        let answer: ReverseAnswer = self.post("reverse", &body).await?;
        if answer.result == super::wire::REVERSE_OK {
            Ok(())
        } else {
            Err(ConnectorError::LostAnswer("unexpected reverse result".to_owned()))
        }
    }

    async fn inquire(&self, reference: &str, acquirer_merchant_id: &str) -> Result<InquiryOutcome, ConnectorError> {
        let body = InquireWire {
            reference: reference.to_owned(),
            merchant_id: acquirer_merchant_id.to_owned(),
        };
        let answer: InquiryAnswer = self.post("inquire", &body).await?;
        Ok(answer.into())
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyOutcome, ConnectorError> {
        let answer: VerifyAnswer = self.post("verify", &VerifyWire::from_request(request)).await?;
        Ok(answer.into())
    }
}
