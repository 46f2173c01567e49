//! paygate's use cases.
//!
//! This layer turns requests (from HTTP, gRPC or the CLI) into domain decisions and store calls. It owns the
//! things the domain core refuses to touch: the clock, the random number generator and the server's secrets.
//! It knows nothing about HTTP.

pub mod auth;
pub mod clock;
pub mod merchants;

use std::sync::Arc;

use paygate_domain::api_key::KeyHasher;
use paygate_store::Store;

pub use clock::{Clock, SystemClock};

/// Server-side secrets, loaded once at start-up. `Debug` never prints them.
#[derive(Clone)]
pub struct Secrets {
    pub api_key_pepper: Vec<u8>,
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

/// The gateway's services, shared by every entry point.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    hasher: KeyHasher,
    clock: Arc<dyn Clock>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, secrets: &Secrets, clock: Arc<dyn Clock>) -> Result<App, AppError> {
        let hasher = KeyHasher::new(secrets.api_key_pepper.clone())
            .map_err(|_| AppError::InvalidSecret("the API key pepper must be at least 32 bytes"))?;
        Ok(App { store, hasher, clock })
    }

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
