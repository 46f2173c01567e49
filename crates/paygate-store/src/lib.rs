//! paygate's storage seam.
//!
//! [`Store`] is the only way the rest of paygate touches a database. Two implementations sit behind it: SQLite
//! (the embedded default: one file, WAL, `synchronous=FULL`, one writer thread with group commit) and PostgreSQL
//! (several gateway processes on one database). The backend is chosen by the URL scheme ([`DatabaseUrl`]).
//! Each backend owns its migrations under `migrations/<backend>/`; the conformance suite in `tests/` runs the same
//! black-box checks against both, and a parity test compares their schemas.
//!
//! Every method that changes state does all of its writes in one transaction, and state changes are conditional
//! on the state they came from (`UPDATE … WHERE id = ? AND state = ?`), so a lost race is reported, not overwritten.

pub mod idempotency;
mod migrate;
pub mod outbox;
pub mod payments;
pub mod postgres;
mod sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

use std::sync::Arc;

use async_trait::async_trait;
use paygate_domain::api_key::Mode;
use paygate_domain::api_key::{ApiKey, KeyHash};
use paygate_domain::id::{ApiKeyId, MerchantId};
use paygate_domain::id::{EventId, PaymentId, WebhookEndpointId};
use paygate_domain::merchant::Merchant;
use paygate_domain::order::OrderId;
use paygate_domain::payment::{Payment, PaymentTransaction};
use paygate_domain::time::UnixMillis;

pub use idempotency::{
    IdempotencyRecord, IdempotencyResource, IdempotencyScope, IdempotencyState, IdempotencyWrite, StoredResponse,
};
pub use migrate::MigrationReport;
pub use outbox::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, DisableEndpoint, EndpointStatus, MerchantSettings, NewEvent,
    NotificationFormat, NotificationTarget, StoredEvent, WebhookEndpoint,
};
pub use payments::{
    AcquirerContract, CheckoutCardChange, CheckoutEntry, CheckoutSession, InsertPaymentOutcome, JournalEntry,
    LedgerAudit, PaymentInsert, PaymentUpdate, Sealed, StoredEncKey, TransactionQuery,
};
pub use url::{DatabaseUrl, DatabaseUrlError};

/// Which implementation is behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// One error enum for the storage boundary. Callers map it to their own errors; none of its text reaches clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state condition did not hold (e.g. a duplicate ID or a lost state race).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The transaction's idempotency key was claimed by another request first; nothing was written.
    #[error("the idempotency key is already taken")]
    IdempotencyConflict,
    /// The database cannot be reached or refused the connection.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The bounded write queue is full or the store is shutting down.
    #[error("store overloaded: {0}")]
    Overloaded(&'static str),
    /// The database does not exist and the open mode forbids creating it.
    #[error("{0}")]
    Missing(String),
    /// The schema is missing, too new or was altered.
    #[error("schema: {0}")]
    Schema(String),
    /// A row holds a value the domain cannot represent: a bug or manual tampering.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(String),
}

/// How opening a database treats a database that does not exist yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Refuse: a misspelt path must not silently become an empty database.
    ExistingOnly,
    /// Create it (explicit `--init`, `migrate`, or the default data directory).
    CreateIfMissing,
}

/// Bounds for both backends. Defaults are written down in `docs/configuration.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    pub open_mode: OpenMode,
    /// SQLite: threads that each hold one read connection (long reads, and short ones when the pool is busy).
    pub sqlite_reader_threads: u16,
    /// SQLite: read connections that short reads use on the calling thread, without a hand-off to a reader thread.
    pub sqlite_inline_readers: u16,
    /// SQLite: queued write jobs before callers wait.
    pub sqlite_write_queue_max: u32,
    /// SQLite: write jobs committed together in one transaction (group commit).
    pub sqlite_write_batch_max: u32,
    /// SQLite: how long a connection waits for a lock held by another process.
    pub sqlite_busy_timeout_ms: u32,
    /// SQLite: how often a checkpointer thread copies the WAL back into the database, off the writer's path; 0 leaves
    /// it to SQLite's automatic checkpoint inside commits (the default: the thread measured no better, see
    /// BENCHMARKS.md).
    pub sqlite_checkpoint_interval_ms: u32,
    /// SQLite: page cache per connection, in MiB.
    pub sqlite_cache_mib: u32,
    /// SQLite: how much of the database file each read connection may map into memory, in MiB; 0 maps nothing.
    pub sqlite_mmap_mib: u32,
    /// PostgreSQL: connections in the pool.
    pub postgres_pool_max: u32,
    /// PostgreSQL: how long to wait to connect, and for a free pooled connection.
    pub postgres_connect_timeout_ms: u32,
    /// PostgreSQL: server-side `statement_timeout` for every connection.
    pub postgres_statement_timeout_ms: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            open_mode: OpenMode::ExistingOnly,
            sqlite_reader_threads: 4,
            sqlite_inline_readers: 4,
            sqlite_write_queue_max: 4096,
            sqlite_write_batch_max: 256,
            sqlite_busy_timeout_ms: 5_000,
            sqlite_checkpoint_interval_ms: 0,
            sqlite_cache_mib: 16,
            sqlite_mmap_mib: 0,
            postgres_pool_max: 16,
            postgres_connect_timeout_ms: 5_000,
            postgres_statement_timeout_ms: 10_000,
        }
    }
}

/// A point-in-time view of the connection pool, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub connections: u32,
    pub idle: u32,
    /// Requests waiting for a connection (PostgreSQL) or queued writes (SQLite).
    pub waiting: u32,
}

/// A key to store beside its record: only the keyed hash, never the key.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub record: ApiKey,
    pub hash: KeyHash,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    fn pool_stats(&self) -> PoolStats;

    /// Stops background threads after queued writes are committed. Idempotent.
    async fn close(&self);

    // Merchants and keys.

    /// Inserts a merchant together with its first keys, atomically.
    async fn insert_merchant(&self, merchant: &Merchant, keys: &[NewApiKey]) -> Result<(), StoreError>;

    async fn merchant(&self, id: MerchantId) -> Result<Option<Merchant>, StoreError>;

    /// Merchants in ID (creation) order, after a cursor; `limit` is capped by the caller.
    async fn list_merchants(&self, after: Option<MerchantId>, limit: u32) -> Result<Vec<Merchant>, StoreError>;

    /// The key with this hash and its merchant, revoked or not: the caller tells revoked from unknown.
    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<(ApiKey, Merchant)>, StoreError>;

    async fn list_keys(&self, merchant_id: MerchantId) -> Result<Vec<ApiKey>, StoreError>;

    /// One key record by its ID, revoked or not.
    async fn key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError>;

    /// Adds `new` and schedules `old` to stop working at `old_revoked_at`, atomically. Fails with `Conflict` if
    /// `old` is already revoked, and `NotFound` if it does not exist; `new` must have the same merchant, mode and
    /// kind as `old`.
    async fn rotate_key(&self, old: ApiKeyId, old_revoked_at: UnixMillis, new: &NewApiKey) -> Result<(), StoreError>;

    /// Revokes a key at `at` (or keeps an earlier revocation instant). `NotFound` if it does not exist.
    async fn revoke_key(&self, id: ApiKeyId, at: UnixMillis) -> Result<ApiKey, StoreError>;

    // Idempotency. Records are written only inside other writes (`IdempotencyWrite`), never on their own.

    /// The record under a key, if any.
    async fn idempotency_record(&self, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Deletes a claim that has no resource to answer from (a legacy claim whose request died), conditionally on
    /// its lock token, so the key may be used again.
    async fn idempotency_release(&self, scope: &IdempotencyScope, lock_token: i64) -> Result<(), StoreError>;

    /// Deletes at most `limit` records created before `created_before`; returns how many.
    async fn idempotency_reap(&self, created_before: UnixMillis, limit: u32) -> Result<u64, StoreError>;

    // Acquirer routing.

    /// Replaces a merchant's contracts for one mode, atomically.
    async fn set_contracts(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        contracts: &[AcquirerContract],
    ) -> Result<(), StoreError>;

    async fn contracts(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<AcquirerContract>, StoreError>;

    // Payments.

    /// Inserts a new payment (version 0) with what belongs to it (checkout card and session, idempotency claim) in
    /// one transaction. `IdempotencyConflict` if the claim's key was taken; nothing is written then.
    async fn insert_payment(&self, insert: &PaymentInsert) -> Result<InsertPaymentOutcome, StoreError>;

    /// A payment of this merchant and mode (another merchant's payment is `None`).
    async fn payment(&self, merchant_id: MerchantId, mode: Mode, id: PaymentId) -> Result<Option<Payment>, StoreError>;

    /// A payment by ID alone, for workers.
    async fn payment_by_id(&self, id: PaymentId) -> Result<Option<Payment>, StoreError>;

    async fn payment_by_order(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        order_id: &OrderId,
    ) -> Result<Option<Payment>, StoreError>;

    /// Applies a state change and its effects in one transaction. `Conflict` if the payment's version moved
    /// (another request or worker won) or a transaction to update is no longer pending; nothing is written then.
    async fn update_payment(&self, update: &PaymentUpdate) -> Result<(), StoreError>;

    /// A payment's approval and cancels, oldest first.
    async fn payment_transactions(&self, payment_id: PaymentId) -> Result<Vec<PaymentTransaction>, StoreError>;

    async fn list_transactions(&self, query: &TransactionQuery) -> Result<Vec<PaymentTransaction>, StoreError>;

    async fn checkout_card(&self, payment_id: PaymentId) -> Result<Option<Sealed>, StoreError>;

    // Work for the background workers, oldest due first, at most `limit`.

    /// Payments whose approval was requested or is unknown, with `next_inquiry_at <= now`.
    async fn due_inquiries(&self, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError>;

    /// READY or IN_PROGRESS payments whose approval was never requested, past `expires_at`.
    async fn due_expiries(&self, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError>;

    /// Pending cancels with `next_attempt_at <= now`.
    async fn due_cancel_retries(&self, now: UnixMillis, limit: u32) -> Result<Vec<PaymentTransaction>, StoreError>;

    // encData keys.

    async fn enc_keys(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<StoredEncKey>, StoreError>;

    /// Adds a key version; earlier versions without a retirement get `retire_previous_at`.
    async fn add_enc_key(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        key: &StoredEncKey,
        retire_previous_at: UnixMillis,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError>;

    // Ledger.

    async fn audit_ledger(&self) -> Result<LedgerAudit, StoreError>;

    // Outbox: events and their deliveries (webhooks, notification URLs).

    /// A merchant's notification settings for one mode (defaults when never set).
    async fn merchant_settings(&self, merchant_id: MerchantId, mode: Mode) -> Result<MerchantSettings, StoreError>;

    async fn set_merchant_settings(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        settings: &MerchantSettings,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError>;

    async fn endpoint(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        id: WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// A merchant's endpoints in one mode, deleted ones excluded, oldest first.
    async fn list_endpoints(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Writes a changed endpoint (subscriptions included), conditional on the stored version being
    /// `endpoint.version - 1`; `Conflict` otherwise.
    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError>;

    /// Writes an event on its own (not tied to a payment change), with its deliveries.
    async fn insert_event(&self, event: &NewEvent) -> Result<(), StoreError>;

    /// Claims up to `limit` due deliveries until `lease_until`: no other worker (in any process) takes them before
    /// then. Completion is conditional on `lock_token`.
    async fn claim_deliveries(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        lock_token: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records an attempt and its consequences in one transaction. `Conflict` if the claim was lost.
    async fn complete_delivery(
        &self,
        lock_token: i64,
        outcome: &AttemptOutcome,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// A merchant's events in one mode, newest first, before a cursor.
    async fn list_events(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    async fn event(&self, merchant_id: MerchantId, mode: Mode, id: EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// An event's deliveries, oldest first.
    async fn event_deliveries(&self, event_id: EventId) -> Result<Vec<Delivery>, StoreError>;

    /// An endpoint's deliveries, newest first, at most `limit`.
    async fn endpoint_deliveries(
        &self,
        endpoint_id: WebhookEndpointId,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError>;

    // Hosted checkout.

    async fn insert_checkout_session(&self, session: &CheckoutSession) -> Result<(), StoreError>;

    async fn checkout_session(&self, payment_id: PaymentId) -> Result<Option<CheckoutSession>, StoreError>;

    /// Writes a changed session, conditional on the stored version being `session.version - 1`.
    async fn update_checkout_session(&self, session: &CheckoutSession) -> Result<(), StoreError>;

    /// Creates fresh deliveries of an event to the endpoints subscribed now and to `notification` if given;
    /// returns how many. `resend` numbers the round so delivery IDs stay unique.
    async fn resend_event(
        &self,
        event: &StoredEvent,
        notification: Option<&NotificationTarget>,
        resend: u32,
        now: UnixMillis,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<u32, StoreError>;
}

/// Opens (and migrates) the database the URL names.
pub async fn open(url: &DatabaseUrl, options: &StoreOptions) -> Result<(Arc<dyn Store>, MigrationReport), StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let (store, report) = sqlite::SqliteStore::open(path, options).await?;
            Ok((Arc::new(store), report))
        }
        DatabaseUrl::Postgres(conninfo) => {
            let (store, report) = postgres::PostgresStore::open(conninfo, options).await?;
            Ok((Arc::new(store), report))
        }
    }
}
