//! paygate's use cases.
//!
//! This layer turns requests (from HTTP, gRPC or the CLI) into domain decisions and store calls. It owns the
//! things the domain core refuses to touch: the clock, the random number generator and the server's secrets.
//! It knows nothing about HTTP.

pub mod auth;
pub mod bank;
pub mod billing;
pub mod cash_receipts;
pub mod clock;
pub mod enc_keys;
pub mod encdata;
pub mod failpoint;
pub mod idempotency;
pub mod instant;
pub mod merchants;
pub mod outbox;
pub mod payments;
pub mod schema;
pub mod vault;

use std::sync::Arc;

use paygate_domain::api_key::KeyHasher;
use paygate_store::Store;

pub use clock::{Clock, SystemClock};

/// Server-side secrets, loaded once at start-up. `Debug` never prints them.
#[derive(Clone)]
pub struct Secrets {
    pub api_key_pepper: Vec<u8>,
    /// The vault's master keys: they wrap the data keys that seal data at rest (cards, encData keys, webhook
    /// secrets).
    pub vault_keys: Vec<vault::VaultKey>,
}

impl Secrets {
    /// Deterministic secrets for tests: never use outside them.
    pub fn for_tests(seed: u8) -> Secrets {
        Secrets {
            api_key_pepper: vec![seed; 32],
            vault_keys: vec![vault::VaultKey {
                version: 1,
                bytes: [seed.wrapping_add(1); 32],
            }],
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid secret: {0}")]
    InvalidSecret(&'static str),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] paygate_store::StoreError),
}

/// The gateway's services, shared by every entry point. Cloning is one reference count: the edge clones the app
/// for every request (axum state, detached use cases), and copying the acquirer maps and settings each time was
/// measurable.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

impl std::ops::Deref for App {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

/// What an [`App`] shares; reached through `App`'s `Deref`.
pub struct AppInner {
    store: Arc<dyn Store>,
    hasher: KeyHasher,
    clock: Arc<dyn Clock>,
    vault: vault::Vault,
    vault_config: vault::VaultConfig,
    acquirers: payments::Acquirers,
    banks: bank::Banks,
    tax_authorities: cash_receipts::TaxAuthorities,
    payments: payments::PaymentConfig,
    outbox: outbox::OutboxConfig,
    idempotency: idempotency::IdempotencyOptions,
    deliverer: Arc<paygate_outbound::Deliverer>,
    /// Derives receipt tokens and sandbox OTPs; derived from the pepper so it is stable across restarts.
    pub(crate) receipt_key: Vec<u8>,
}

/// What an [`App`] is built from besides the store, secrets and clock.
#[derive(Clone, Default)]
pub struct AppOptions {
    pub acquirers: payments::Acquirers,
    /// The banks of the bank methods; none: virtual accounts are refused (`INVALID_BANK`).
    pub banks: bank::Banks,
    /// Where cash receipts are reported, per mode; none: cash receipts are refused in that mode.
    pub tax_authorities: cash_receipts::TaxAuthorities,
    pub payments: payments::PaymentConfig,
    pub outbox: outbox::OutboxConfig,
    pub idempotency: idempotency::IdempotencyOptions,
    pub vault: vault::VaultConfig,
}

impl App {
    /// An app with the in-process sandbox acquirers and default payment settings.
    pub fn new(store: Arc<dyn Store>, secrets: &Secrets, clock: Arc<dyn Clock>) -> Result<App, AppError> {
        let (acquirers, _) = payments::Acquirers::in_process_sandbox();
        let notify_secret = bank::Banks::sandbox_notify_secret(secrets);
        let (banks, _) = bank::Banks::in_process_sandbox(clock.now(), &notify_secret);
        let options = AppOptions {
            acquirers,
            banks,
            tax_authorities: cash_receipts::TaxAuthorities::in_process_sandbox().0,
            ..AppOptions::default()
        };
        App::with_options(store, secrets, clock, options)
    }

    pub fn with_options(
        store: Arc<dyn Store>,
        secrets: &Secrets,
        clock: Arc<dyn Clock>,
        options: AppOptions,
    ) -> Result<App, AppError> {
        let hasher = KeyHasher::new(secrets.api_key_pepper.clone())
            .map_err(|_| AppError::InvalidSecret("the API key pepper must be at least 32 bytes"))?;
        let vault = vault::Vault::new(secrets.vault_keys.clone())
            .map_err(|_| AppError::InvalidSecret("at least one vault key is required"))?;
        let outbox = options.outbox;
        let deliverer = paygate_outbound::Deliverer::new(paygate_outbound::DelivererConfig {
            connect_timeout_ms: u64::from(outbox.connect_timeout_ms),
            request_timeout_ms: u64::from(outbox.request_timeout_ms),
            response_body_max_bytes: usize::try_from(outbox.response_body_max_bytes).unwrap_or(4_096),
            user_agent: concat!("paygate/", env!("CARGO_PKG_VERSION")).to_owned(),
            policy: outbox.policy(),
        })
        .map_err(|e| AppError::InvalidInput(format!("outbox: {e}")))?;
        Ok(App {
            inner: Arc::new(AppInner {
                store,
                hasher,
                clock,
                vault,
                vault_config: options.vault,
                acquirers: options.acquirers,
                banks: options.banks,
                tax_authorities: options.tax_authorities,
                payments: options.payments,
                outbox,
                idempotency: options.idempotency,
                deliverer: Arc::new(deliverer),
                receipt_key: derive_key(&secrets.api_key_pepper, b"paygate receipt and sandbox OTP key"),
            }),
        })
    }
}

impl AppInner {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }
}

/// Fresh entropy for IDs and keys from the thread-local CSPRNG (ChaCha, seeded from the OS).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::Rng;
    let mut bytes = [0u8; N];
    rand::rng().fill(&mut bytes[..]);
    bytes
}

/// A random byte source for `ApiKeySecret::generate`.
pub fn random_byte() -> u8 {
    use rand::Rng;
    rand::rng().random()
}

/// HMAC-SHA256 of a label under a secret: a separate key per purpose from one secret.
pub(crate) fn derive_key(secret: &[u8], label: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(label);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}
