//! Outbound deliveries: paygate's messages to merchants' servers.
//!
//! Two kinds of message leave paygate for a merchant-chosen URL:
//!
//! - **webhooks**: JSON events signed with Standard Webhooks ([`signing`]); delivered when the merchant answers
//!   2xx ([`webhook_succeeded`]);
//! - **notifications** (노티): the Korean-PG-style form POST to the merchant's notification URL; delivered when the
//!   merchant answers 2xx with a body containing `SUCCESS` ([`notification_succeeded`]).
//!
//! This crate makes one attempt at a time ([`Deliverer::post`]) and says what happened. It decides no retries and
//! stores nothing: the outbox worker owns the schedule and the delivery log.
//!
//! Every URL goes through the SSRF guard ([`ssrf`]): at registration ([`SsrfPolicy::check_url`]), before each
//! attempt, and at connect time through the client's resolver, which defeats DNS rebinding.
//!
//! The HTTP client speaks TLS with rustls and the Mozilla root certificates (webpki-roots), so merchants' `https`
//! URLs work without a system certificate store.
//!
//! Interoperability with the reference Python implementation of Standard Webhooks is checked by
//! `tests/python_interop.rs`, behind the `python-interop` feature:
//!
//! ```text
//! pip install standardwebhooks
//! cargo test -p paygate-outbound --features python-interop --test python_interop
//! ```

pub mod deliver;
pub mod signing;
pub mod ssrf;

pub use deliver::{
    form_encode, notification_succeeded, webhook_succeeded, Deliverer, DelivererBuildError, DelivererConfig,
    DeliveryError, DeliveryResult, CONTENT_TYPE_FORM, CONTENT_TYPE_JSON,
};
pub use signing::{signature_header, verify, webhook_headers, SecretError, VerifyError, WebhookSecret};
pub use ssrf::{CheckedUrl, HostResolver, NameRefusal, Refusal, SsrfError, SsrfPolicy, SystemResolver};
