//! One HTTP delivery attempt to a merchant's server.
//!
//! [`Deliverer::post`] sends one POST and reports what happened; it never retries and stores nothing, because
//! retry schedules and the delivery log belong to the caller (the outbox worker). The attempt is guarded by the
//! [`SsrfPolicy`] twice: the URL (with IP literals) before sending, and every resolved address at connect time.
//! Redirects are never followed, proxies from the environment are never used, and the response body is read only
//! up to a bound.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::ssrf::{GuardedResolver, HostResolver, SsrfError, SsrfPolicy, SystemResolver};

/// `Content-Type` of webhooks.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// `Content-Type` of notification-URL calls, whose bodies [`form_encode`] builds.
pub const CONTENT_TYPE_FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// What a notification's response body must contain (case-sensitive) for [`notification_succeeded`].
pub const NOTIFICATION_SUCCESS_MARKER: &str = "SUCCESS";

/// The largest `response_body_max_bytes` a configuration may ask for: the body is kept for the delivery log only.
pub const RESPONSE_BODY_MAX_BYTES_LIMIT: usize = 1024 * 1024;
/// The longest request timeout a configuration may ask for.
pub const REQUEST_TIMEOUT_MS_LIMIT: u64 = 120_000;
/// Caller-supplied headers per request.
pub const HEADERS_MAX: usize = 32;
/// Bytes per caller-supplied header value.
pub const HEADER_VALUE_MAX_BYTES: usize = 8192;
/// Characters kept of an error description.
const ERROR_DESCRIPTION_MAX_BYTES: usize = 512;

/// Headers the client sets itself (framing, routing, connection management); a caller setting them could only
/// produce a malformed or misrouted request.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// How a [`Deliverer`] behaves. All bounds are checked by [`Deliverer::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelivererConfig {
    /// Resolving and connecting, per attempt.
    pub connect_timeout_ms: u64,
    /// The whole attempt: connecting, sending, the response head and the (bounded) body.
    pub request_timeout_ms: u64,
    /// Bytes of the response body kept (for the delivery log and the `SUCCESS` check); the rest is not read.
    pub response_body_max_bytes: usize,
    pub user_agent: String,
    pub policy: SsrfPolicy,
}

impl Default for DelivererConfig {
    fn default() -> DelivererConfig {
        DelivererConfig {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            response_body_max_bytes: 4096,
            user_agent: concat!("paygate-outbound/", env!("CARGO_PKG_VERSION")).to_owned(),
            policy: SsrfPolicy::default(),
        }
    }
}

/// A configuration [`Deliverer::new`] cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DelivererBuildError {
    #[error("invalid deliverer configuration: {0}")]
    Config(&'static str),
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// Why an attempt did not get a complete answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The SSRF guard refused the URL or every address of its host; nothing was sent.
    #[error("refused, nothing was sent: {0}")]
    Refused(SsrfError),
    /// The caller's headers or content type cannot go on the wire; nothing was sent.
    #[error("invalid request, nothing was sent: {0}")]
    InvalidRequest(String),
    /// No connection could be made (refused, unreachable, connect timeout, no TLS); nothing was sent.
    #[error("could not connect, nothing was sent: {0}")]
    Connect(String),
    /// The request timeout passed before the answer (head and kept body) arrived; the merchant may have received
    /// and processed the request.
    #[error("no complete answer within the request timeout")]
    Timeout,
    /// The exchange failed after connecting; the merchant may have received the request.
    #[error("the exchange failed: {0}")]
    Io(String),
}

impl DeliveryError {
    /// True when the merchant's server cannot have seen the request.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            DeliveryError::Refused(_) | DeliveryError::InvalidRequest(_) | DeliveryError::Connect(_)
        )
    }
}

/// What one attempt produced: everything a delivery log row needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryResult {
    /// The response status, when a response head arrived (a 3xx is recorded as is, never followed).
    pub status: Option<u16>,
    /// From the call to the end of the (bounded) body read.
    pub latency_ms: u32,
    /// The first `response_body_max_bytes` bytes of the body, as lossy UTF-8, cut at a character boundary.
    pub response_body: String,
    /// True when the server announced or sent more than was kept.
    pub response_truncated: bool,
    /// `None` when a complete answer (status and kept body) arrived in time.
    pub error: Option<DeliveryError>,
}

impl DeliveryResult {
    fn failed(started: Instant, status: Option<u16>, error: DeliveryError) -> DeliveryResult {
        DeliveryResult {
            status,
            latency_ms: elapsed_ms(started),
            response_body: String::new(),
            response_truncated: false,
            error: Some(error),
        }
    }

    /// True for a complete answer with a 2xx status.
    pub fn is_2xx(&self) -> bool {
        self.error.is_none() && matches!(self.status, Some(200..=299))
    }
}

/// A webhook is delivered when the merchant answered 2xx within the request timeout; the body is not looked at
/// (Standard Webhooks).
pub fn webhook_succeeded(result: &DeliveryResult) -> bool {
    result.is_2xx()
}

/// A notification (노티) is delivered when the merchant answered 2xx within the request timeout *and* the kept
/// response body contains `SUCCESS` (case-sensitive, anywhere in the first `response_body_max_bytes` bytes).
///
/// The seed only asks for the body; the 2xx is required too because an error page that happens to quote the word
/// (a 500 with a stack trace mentioning `SUCCESS`) is not an acknowledgement. "Contains" also matches
/// `UNSUCCESSFUL`: docs/webhooks.md states this one rule and tells merchants never to put the word in a failure.
pub fn notification_succeeded(result: &DeliveryResult) -> bool {
    result.is_2xx() && result.response_body.contains(NOTIFICATION_SUCCESS_MARKER)
}

/// `application/x-www-form-urlencoded` for a notification body: UTF-8, spaces as `+`, everything but
/// `[A-Za-z0-9*-._]` percent-encoded (the WHATWG serializer, which servlet and PHP parsers read).
pub fn form_encode(pairs: &[(&str, String)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(name, value)| (*name, value.as_str())))
        .finish()
        .into_bytes()
}

/// Sends single POST attempts to merchants' servers. Cheap to share: it holds one connection pool.
#[derive(Clone, Debug)]
pub struct Deliverer {
    client: reqwest::Client,
    config: Arc<DelivererConfig>,
}

impl Deliverer {
    /// A deliverer resolving names with the system resolver.
    pub fn new(config: DelivererConfig) -> Result<Deliverer, DelivererBuildError> {
        Deliverer::with_resolver(config, Arc::new(SystemResolver))
    }

    /// A deliverer resolving names with `resolver` (through the SSRF filter all the same): for tests, or a
    /// resolver other than the system's.
    pub fn with_resolver(
        config: DelivererConfig,
        resolver: Arc<dyn HostResolver>,
    ) -> Result<Deliverer, DelivererBuildError> {
        if config.connect_timeout_ms == 0 || config.request_timeout_ms == 0 {
            return Err(DelivererBuildError::Config("timeouts must be positive"));
        }
        if config.request_timeout_ms > REQUEST_TIMEOUT_MS_LIMIT {
            return Err(DelivererBuildError::Config("request_timeout_ms is above 120000"));
        }
        if config.response_body_max_bytes > RESPONSE_BODY_MAX_BYTES_LIMIT {
            return Err(DelivererBuildError::Config("response_body_max_bytes is above 1 MiB"));
        }
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver::new(config.policy, resolver)))
            // A redirect would lead to a URL nobody checked; a 3xx is just a non-2xx answer.
            .redirect(reqwest::redirect::Policy::none())
            // An HTTP(S)_PROXY in the environment would make the client resolve the proxy instead of the merchant's
            // host, bypassing the resolver above.
            .no_proxy()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .user_agent(config.user_agent.as_str())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|e| DelivererBuildError::Client(describe(&e)))?;
        Ok(Deliverer {
            client,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &DelivererConfig {
        &self.config
    }

    /// One POST of `body` to `url` with `headers` and `content_type`. Never panics and never returns early with
    /// an `Err`: every outcome, including a refusal, is a [`DeliveryResult`].
    pub async fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        content_type: &str,
        body: Vec<u8>,
    ) -> DeliveryResult {
        let started = Instant::now();
        // The client asks the guarded resolver about names only; IP literals are checked here, and names are
        // refused early by the same rules as at registration.
        let url = match self.config.policy.check_url_offline(url) {
            Ok(url) => url,
            Err(e) => return DeliveryResult::failed(started, None, DeliveryError::Refused(e)),
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let header_map = match build_headers(headers, content_type) {
            Ok(map) => map,
            Err(e) => return DeliveryResult::failed(started, None, e),
        };
        let result = self.send(url, header_map, body, started).await;
        tracing::debug!(
            host = %host,
            status = ?result.status,
            latency_ms = result.latency_ms,
            error = ?result.error,
            "outbound delivery attempt"
        );
        result
    }

    async fn send(&self, url: reqwest::Url, headers: HeaderMap, body: Vec<u8>, started: Instant) -> DeliveryResult {
        let response = match self.client.post(url).headers(headers).body(body).send().await {
            Ok(response) => response,
            Err(e) => return DeliveryResult::failed(started, None, classify(e)),
        };
        let status = response.status().as_u16();
        let max = self.config.response_body_max_bytes;
        let announced_more = response
            .content_length()
            .is_some_and(|len| usize::try_from(len).map_or(true, |len| len > max));
        let (mut kept, saw_more, error) = read_bounded(response, max).await;
        if announced_more || saw_more {
            // The cut may fall inside a multi-byte character: drop the incomplete tail rather than log it as U+FFFD.
            if let Err(e) = std::str::from_utf8(&kept) {
                if e.error_len().is_none() {
                    kept.truncate(e.valid_up_to());
                }
            }
        }
        let mut response_body = String::from_utf8_lossy(&kept).into_owned();
        // Lossy decoding can grow the text (an invalid byte becomes a 3-byte U+FFFD): cut again to the bound.
        let cut = truncate_at_char_boundary(&mut response_body, max);
        DeliveryResult {
            status: Some(status),
            latency_ms: elapsed_ms(started),
            response_body,
            response_truncated: announced_more || saw_more || cut,
            error,
        }
    }
}

/// Reads at most `max` bytes of the body, chunk by chunk; stops as soon as the bound is reached, leaving the rest
/// unread (the connection is then closed, not reused). Returns the kept bytes, whether more were seen, and the
/// error that ended the read early.
async fn read_bounded(mut response: reqwest::Response, max: usize) -> (Vec<u8>, bool, Option<DeliveryError>) {
    let mut kept = Vec::with_capacity(max.min(64 * 1024));
    while kept.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max - kept.len();
                if chunk.len() > room {
                    kept.extend_from_slice(&chunk[..room]);
                    return (kept, true, None);
                }
                kept.extend_from_slice(&chunk);
            }
            Ok(None) => return (kept, false, None),
            Err(e) => return (kept, false, Some(classify(e))),
        }
    }
    (kept, false, None)
}

fn build_headers(headers: Vec<(String, String)>, content_type: &str) -> Result<HeaderMap, DeliveryError> {
    if headers.len() > HEADERS_MAX {
        return Err(DeliveryError::InvalidRequest(format!(
            "more than {HEADERS_MAX} headers"
        )));
    }
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    let content_type = HeaderValue::from_str(content_type)
        .map_err(|_| DeliveryError::InvalidRequest("the content type is not a valid header value".to_owned()))?;
    map.insert(CONTENT_TYPE, content_type);
    for (name, value) in headers {
        // Names are safe to echo (they are ours); values may be secrets and never are.
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| DeliveryError::InvalidRequest("a header name is not a valid token".to_owned()))?;
        if RESERVED_HEADERS.contains(&header.as_str()) || header.as_str().starts_with("proxy-") {
            return Err(DeliveryError::InvalidRequest(format!(
                "the {header} header is set by the client"
            )));
        }
        if value.len() > HEADER_VALUE_MAX_BYTES {
            return Err(DeliveryError::InvalidRequest(format!(
                "the {header} header value is too long"
            )));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| DeliveryError::InvalidRequest(format!("the {header} header value is not valid")))?;
        map.append(header, value);
    }
    Ok(map)
}

/// Sorts a client error into the delivery error kinds. A refusal by the guarded resolver arrives wrapped in the
/// client's connect error; it is found in the source chain so that it is reported as a refusal, not a failure.
fn classify(error: reqwest::Error) -> DeliveryError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<SsrfError>() {
            return DeliveryError::Refused(refusal.clone());
        }
        source = e.source();
    }
    // Connect comes first: a connect timeout is also a timeout, but one where nothing was sent.
    if error.is_connect() {
        DeliveryError::Connect(describe(&error))
    } else if error.is_timeout() {
        DeliveryError::Timeout
    } else {
        DeliveryError::Io(describe(&error))
    }
}

/// The error and its causes, without the URL (whose query may carry a merchant's token), bounded in length.
fn describe(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    // reqwest's own message would repeat the URL; its kind is enough.
    let head = if error.is_connect() {
        "connect error"
    } else if error.is_timeout() {
        "timeout"
    } else if error.is_body() || error.is_decode() {
        "body error"
    } else if error.is_builder() {
        "invalid request"
    } else {
        "request error"
    };
    let mut text = std::iter::once(head.to_owned())
        .chain(parts)
        .collect::<Vec<_>>()
        .join(": ");
    truncate_at_char_boundary(&mut text, ERROR_DESCRIPTION_MAX_BYTES);
    text
}

/// Cuts `text` to at most `max` bytes without splitting a character; says whether it cut.
fn truncate_at_char_boundary(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

fn elapsed_ms(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX)
}
