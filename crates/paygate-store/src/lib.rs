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

mod billing;
mod billing_auth;
mod cash_receipts;
mod checkout;
mod db;
mod idempotency;
mod ledger;
mod merchants;
mod migrate;
mod outbox;
mod payments;
pub mod postgres;
mod sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod transfers;
mod url;
mod vault;
mod virtual_accounts;

use std::sync::Arc;

use async_trait::async_trait;

pub use billing::{BillingKeyInsert, BillingKeyUpdate, BillingStore};
pub use billing_auth::{AuthCardChange, BillingAuthStore};
pub use cash_receipts::{CashReceiptStore, InsertReceiptOutcome, ReceiptChange, ReceiptFilter};
pub use checkout::CheckoutStore;
pub use idempotency::{
    IdempotencyRecord, IdempotencyResource, IdempotencyScope, IdempotencyState, IdempotencyStore, IdempotencyWrite,
    StoredResponse,
};
pub use ledger::{JournalEntry, JournalOf, LedgerAudit, LedgerStore};
pub use merchants::{MerchantStore, NewApiKey, StoredEncKey};
pub use migrate::MigrationReport;
pub use outbox::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, DisableEndpoint, NewEvent, NotificationTarget, OutboxStore,
    StoredEvent,
};
pub use payments::{
    CheckoutCardChange, InsertPaymentOutcome, ListedTransaction, PaymentInsert, PaymentQuery, PaymentStore,
    PaymentUpdate, TransactionQuery,
};
pub use transfers::TransferStore;
pub use url::{DatabaseUrl, DatabaseUrlError};
pub use vault::{DataKeyRecord, DataKeyState, Resealed, SealedCount, SealedKind, SealedRow, VaultStore};
pub use virtual_accounts::{BankChanges, VirtualAccountStore};
// Domain entities the store's traits take and return, re-exported so that callers which used to import them from
// here keep compiling; new code imports them from `paygate_domain`.
pub use paygate_domain::checkout::{CheckoutEntry, CheckoutSession};
pub use paygate_domain::event::NotificationFormat;
pub use paygate_domain::merchant::MerchantSettings;
pub use paygate_domain::routing::AcquirerContract;
pub use paygate_domain::sealed::Sealed;
pub use paygate_domain::webhook::{EndpointStatus, WebhookEndpoint};

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
    /// Data sealed under a retired vault data key was about to be written (this process had not seen the rotation
    /// yet); nothing was written. Reload the data keys and seal again.
    #[error("vault data key {0} is retired")]
    StaleVaultKey(u32),
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

/// The whole storage seam: every aggregate's trait, and the lifecycle of the connection behind them. Callers that
/// need one aggregate only may take its trait instead.
#[async_trait]
pub trait Store:
    MerchantStore
    + PaymentStore
    + CheckoutStore
    + BillingStore
    + BillingAuthStore
    + VaultStore
    + LedgerStore
    + VirtualAccountStore
    + TransferStore
    + CashReceiptStore
    + OutboxStore
    + IdempotencyStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    fn pool_stats(&self) -> PoolStats;

    /// Stops background threads after queued writes are committed. Idempotent.
    async fn close(&self);
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
