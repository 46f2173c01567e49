//! The SQLite store: the embedded default.
//!
//! Pragmas are fixed here, not taken from the URL: WAL (readers never block the writer), `synchronous=FULL`
//! (a commit survives power loss), foreign keys on, and a busy timeout for other processes holding the lock.
//! Write transactions start with `BEGIN IMMEDIATE` so a second process fails fast on the lock instead of
//! deadlocking on an upgrade from a read lock.

mod checkout;
mod outbox;
mod payments;
mod runtime;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use paygate_domain::api_key::{ApiKey, KeyHash, KeyKind, Mode};
use paygate_domain::id::{ApiKeyId, EventId, MerchantId, PaymentId, WebhookEndpointId};
use paygate_domain::merchant::{Merchant, MerchantName, MerchantStatus};
use paygate_domain::order::OrderId;
use paygate_domain::payment::{Payment, PaymentTransaction};
use paygate_domain::time::UnixMillis;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::migrate::{self, Migration, MigrationReport};
use crate::outbox::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, MerchantSettings, NewEvent, NotificationTarget, StoredEvent,
    WebhookEndpoint,
};
use crate::payments::{
    AcquirerContract, CheckoutSession, InsertPaymentOutcome, LedgerAudit, PaymentInsert, PaymentUpdate, Sealed,
    StoredEncKey, TransactionQuery,
};
use crate::{
    Backend, IdempotencyRecord, IdempotencyScope, IdempotencyWrite, NewApiKey, OpenMode, PoolStats, Store, StoreError,
    StoreOptions,
};
use runtime::Runtime;

/// Statement-cached `execute` and `query_row`: rusqlite's own parse the SQL on every call, which profiling showed
/// as the largest single cost of the write path. Every statement in this backend goes through the cache.
pub(crate) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Distinct statements kept prepared per connection (the code base has about a hundred).
const STATEMENT_CACHE: usize = 256;

/// The WAL file is truncated to this size when it restarts after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Lets a read connection map the database file instead of copying pages into its cache. In WAL mode a reader's
/// page cache is emptied whenever another connection has committed since its last read (every read, under load), so
/// without a map every page of every read is a `pread`.
fn set_mmap(conn: &Connection, mib: u32) -> Result<(), StoreError> {
    let bytes = i64::from(mib) * 1024 * 1024;
    conn.pragma_update(None, "mmap_size", bytes).map_err(backend)
}

fn set_cache(conn: &Connection, mib: u32) -> Result<(), StoreError> {
    // A negative cache_size is in KiB.
    let kib = -i64::from(mib.max(1)) * 1024;
    conn.pragma_update(None, "cache_size", kib).map_err(backend)
}

pub(crate) const MIGRATIONS: [Migration; 6] = [
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../../migrations/sqlite/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "payments",
        sql: include_str!("../../migrations/sqlite/0002_payments.sql"),
    },
    Migration {
        version: 3,
        name: "outbox",
        sql: include_str!("../../migrations/sqlite/0003_outbox.sql"),
    },
    Migration {
        version: 4,
        name: "checkout",
        sql: include_str!("../../migrations/sqlite/0004_checkout.sql"),
    },
    Migration {
        version: 5,
        name: "idempotency_in_use_cases",
        sql: include_str!("../../migrations/sqlite/0005_idempotency_in_use_cases.sql"),
    },
    Migration {
        version: 6,
        name: "redirect_origins",
        sql: include_str!("../../migrations/sqlite/0006_redirect_origins.sql"),
    },
];

pub struct SqliteStore {
    runtime: Runtime,
    path: PathBuf,
}

impl SqliteStore {
    pub async fn open(path: &Path, options: &StoreOptions) -> Result<(SqliteStore, MigrationReport), StoreError> {
        let path = path.to_path_buf();
        let options = options.clone();
        let opened = tokio::task::spawn_blocking(move || open_blocking(&path, &options).map(|parts| (parts, path)))
            .await
            .map_err(|e| StoreError::Backend(format!("open task failed: {e}")))??;
        let ((writer, readers, inline, report, options), path) = opened;
        let checkpointer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        let runtime = Runtime::start(
            writer,
            readers,
            inline,
            checkpointer,
            runtime::Limits {
                write_queue_max: options.sqlite_write_queue_max,
                write_batch_max: options.sqlite_write_batch_max,
                checkpoint_interval: (options.sqlite_checkpoint_interval_ms > 0)
                    .then(|| Duration::from_millis(u64::from(options.sqlite_checkpoint_interval_ms))),
            },
        )?;
        Ok((SqliteStore { runtime, path }, report))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

type Opened = (
    Connection,
    Vec<Connection>,
    Vec<Connection>,
    MigrationReport,
    StoreOptions,
);

fn open_blocking(path: &Path, options: &StoreOptions) -> Result<Opened, StoreError> {
    let exists = path.exists();
    if !exists && options.open_mode == OpenMode::ExistingOnly {
        return Err(StoreError::Missing(format!(
            "no database at {}; create it with `paygate migrate` (or `paygate serve --init`), or check the path",
            path.display()
        )));
    }
    if !exists {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir_all(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        create_private_file(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", path.display())))?;
    }
    let busy = Duration::from_millis(u64::from(options.sqlite_busy_timeout_ms));
    let writer = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unavailable)?;
    writer.busy_timeout(busy).map_err(backend)?;
    writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    set_wal(&writer, busy)?;
    writer.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
    // Savepoint journals (one per write job) stay in memory instead of a temporary file.
    writer.pragma_update(None, "temp_store", "MEMORY").map_err(backend)?;
    // With a checkpoint interval, the checkpointer thread checkpoints and the writer never stops a commit to do it;
    // with 0, SQLite's own automatic checkpoint (every 1,000 pages, inside a commit) does.
    if options.sqlite_checkpoint_interval_ms > 0 {
        writer.pragma_update(None, "wal_autocheckpoint", 0).map_err(backend)?;
    }
    // After a checkpoint the WAL restarts from its beginning; keep the file itself from staying huge.
    writer
        .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)
        .map_err(backend)?;
    set_cache(&writer, options.sqlite_cache_mib)?;
    writer.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
    let journal: String = writer
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .map_err(backend)?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!("SQLite refused WAL mode (got {journal})")));
    }
    let report = run_migrations(&writer)?;
    let open_reader = || -> Result<Connection, StoreError> {
        let reader =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(unavailable)?;
        reader.busy_timeout(busy).map_err(backend)?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        reader.pragma_update(None, "query_only", "ON").map_err(backend)?;
        set_cache(&reader, options.sqlite_cache_mib)?;
        set_mmap(&reader, options.sqlite_mmap_mib)?;
        Ok(reader)
    };
    let readers = (0..options.sqlite_reader_threads.max(1))
        .map(|_| open_reader())
        .collect::<Result<Vec<_>, _>>()?;
    let inline = (0..options.sqlite_inline_readers)
        .map(|_| open_reader())
        .collect::<Result<Vec<_>, _>>()?;
    Ok((writer, readers, inline, report, options.clone()))
}

/// Creates missing directories owner-only (0700 on Unix): they will hold customers' names and emails.
fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Creates the empty database file owner-only (0600 on Unix) before SQLite opens it. SQLite creates the `-wal` and
/// `-shm` files with the database file's permissions, so they are owner-only too (left to SQLite, all three would be
/// 0644 under the usual umask). Another process creating it first is fine: an empty file is an empty database.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Switching to WAL needs an exclusive lock and does not wait on the busy handler, so when several processes open
/// a new database at once it is retried here until the busy timeout runs out.
fn set_wal(conn: &Connection, busy: Duration) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + busy;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(code, _))
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => return Err(backend(error)),
        }
    }
}

fn run_migrations(conn: &Connection) -> Result<MigrationReport, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
    let result = (|| {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER NOT NULL PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at INTEGER NOT NULL
            ) STRICT",
        )
        .map_err(backend)?;
        let mut stmt = conn
            .prepare_cached("SELECT version, checksum FROM schema_migrations ORDER BY version")
            .map_err(backend)?;
        let applied = stmt
            .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        let was_empty = applied.is_empty();
        let mut report = MigrationReport {
            applied: Vec::new(),
            was_empty,
        };
        for migration in migrate::plan(&MIGRATIONS, &applied)? {
            conn.execute_batch(migration.sql)
                .map_err(|e| StoreError::Schema(format!("migration {} failed: {e}", migration.version)))?;
            conn.exec(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    migration.version,
                    migration.name,
                    migrate::checksum(migration.sql),
                    now_millis()
                ],
            )
            .map_err(backend)?;
            report.applied.push(migration.version);
        }
        Ok(report)
    })();
    match result {
        Ok(report) => {
            conn.execute_batch("COMMIT").map_err(backend)?;
            Ok(report)
        }
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Migration bookkeeping is the only place that reads the clock, and only for a human-readable `applied_at`.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &error {
        match code.code {
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                return StoreError::Unavailable(error.to_string())
            }
            rusqlite::ErrorCode::ConstraintViolation => return StoreError::Conflict("constraint violated"),
            _ => {}
        }
    }
    // A value the domain cannot represent (see `corrupt`) or that does not convert: the row is corrupt.
    if let rusqlite::Error::InvalidColumnType(..)
    | rusqlite::Error::IntegralValueOutOfRange(..)
    | rusqlite::Error::FromSqlConversionFailure(..) = &error
    {
        return StoreError::Corrupt(error.to_string());
    }
    StoreError::Backend(error.to_string())
}

fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

const MERCHANT_COLUMNS: &str = "m.id, m.name, m.status, m.created_at";
const KEY_COLUMNS: &str = "k.id, k.merchant_id, k.mode, k.kind, k.display_prefix, k.created_at, k.revoked_at";

fn merchant_from_row(row: &Row<'_>, offset: usize) -> rusqlite::Result<Merchant> {
    let id: String = row.get(offset)?;
    let name: String = row.get(offset + 1)?;
    let status: String = row.get(offset + 2)?;
    Ok(Merchant {
        id: MerchantId::parse(&id).map_err(|_| corrupt("merchants.id"))?,
        name: MerchantName::parse(&name).map_err(|_| corrupt("merchants.name"))?,
        status: MerchantStatus::parse(&status).ok_or_else(|| corrupt("merchants.status"))?,
        created_at: UnixMillis::new(row.get(offset + 3)?),
    })
}

fn key_from_row(row: &Row<'_>, offset: usize) -> rusqlite::Result<ApiKey> {
    let id: String = row.get(offset)?;
    let merchant_id: String = row.get(offset + 1)?;
    let mode: String = row.get(offset + 2)?;
    let kind: String = row.get(offset + 3)?;
    Ok(ApiKey {
        id: ApiKeyId::parse(&id).map_err(|_| corrupt("api_keys.id"))?,
        merchant_id: MerchantId::parse(&merchant_id).map_err(|_| corrupt("api_keys.merchant_id"))?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt("api_keys.mode"))?,
        kind: KeyKind::parse(&kind).ok_or_else(|| corrupt("api_keys.kind"))?,
        display_prefix: row.get(offset + 4)?,
        created_at: UnixMillis::new(row.get(offset + 5)?),
        revoked_at: row.get::<_, Option<i64>>(offset + 6)?.map(UnixMillis::new),
    })
}

fn select_key(conn: &Connection, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
    conn.row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = ?1"),
        params![id.to_string()],
        |row| key_from_row(row, 0),
    )
    .optional()
    .map_err(backend)
}

fn insert_key(conn: &Connection, key: &NewApiKey) -> Result<(), StoreError> {
    let record = &key.record;
    conn.exec(
        "INSERT INTO api_keys (id, merchant_id, mode, kind, key_hash, display_prefix, created_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            record.id.to_string(),
            record.merchant_id.to_string(),
            record.mode.as_str(),
            record.kind.as_str(),
            key.hash.as_bytes().as_slice(),
            record.display_prefix,
            record.created_at.as_millis(),
            record.revoked_at.map(UnixMillis::as_millis),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.runtime
            .read(|conn| conn.row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await?;
        // The writer answers too: a stuck writer means the gateway cannot take payments.
        self.runtime.write(|_| Ok(())).await
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            connections: self.runtime.reader_count() + 1,
            idle: 0,
            waiting: self.runtime.queued_writes(),
        }
    }

    async fn close(&self) {
        self.runtime.close().await;
    }

    async fn insert_merchant(&self, merchant: &Merchant, keys: &[NewApiKey]) -> Result<(), StoreError> {
        let merchant = merchant.clone();
        let keys = keys.to_vec();
        self.runtime
            .write(move |conn| {
                conn.exec(
                    "INSERT INTO merchants (id, name, status, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        merchant.id.to_string(),
                        merchant.name.as_str(),
                        merchant.status.as_str(),
                        merchant.created_at.as_millis()
                    ],
                )
                .map_err(backend)?;
                for key in &keys {
                    if key.record.merchant_id != merchant.id {
                        return Err(StoreError::Conflict("key belongs to another merchant"));
                    }
                    insert_key(conn, key)?;
                }
                Ok(())
            })
            .await
    }

    async fn merchant(&self, id: MerchantId) -> Result<Option<Merchant>, StoreError> {
        self.runtime
            .read(move |conn| {
                conn.row(
                    &format!("SELECT {MERCHANT_COLUMNS} FROM merchants m WHERE m.id = ?1"),
                    params![id.to_string()],
                    |row| merchant_from_row(row, 0),
                )
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn list_merchants(&self, after: Option<MerchantId>, limit: u32) -> Result<Vec<Merchant>, StoreError> {
        self.runtime
            .read(move |conn| {
                let after = after.map(|id| id.to_string()).unwrap_or_default();
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {MERCHANT_COLUMNS} FROM merchants m WHERE m.id > ?1 ORDER BY m.id LIMIT ?2"
                    ))
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![after, limit], |row| merchant_from_row(row, 0))
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<(ApiKey, Merchant)>, StoreError> {
        let hash = *hash;
        self.runtime
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {KEY_COLUMNS}, {MERCHANT_COLUMNS} FROM api_keys k
                         JOIN merchants m ON m.id = k.merchant_id WHERE k.key_hash = ?1"
                    ))
                    .map_err(backend)?;
                stmt.query_row(params![hash.as_bytes().as_slice()], |row| {
                    Ok((key_from_row(row, 0)?, merchant_from_row(row, 7)?))
                })
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn list_keys(&self, merchant_id: MerchantId) -> Result<Vec<ApiKey>, StoreError> {
        self.runtime
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.merchant_id = ?1 ORDER BY k.id"
                    ))
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![merchant_id.to_string()], |row| key_from_row(row, 0))
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        self.runtime.read(move |conn| select_key(conn, id)).await
    }

    async fn rotate_key(&self, old: ApiKeyId, old_revoked_at: UnixMillis, new: &NewApiKey) -> Result<(), StoreError> {
        let new = new.clone();
        self.runtime
            .write(move |conn| {
                let existing = select_key(conn, old)?.ok_or(StoreError::NotFound)?;
                let same_slot = existing.merchant_id == new.record.merchant_id
                    && existing.mode == new.record.mode
                    && existing.kind == new.record.kind;
                if !same_slot {
                    return Err(StoreError::Conflict(
                        "the new key must have the old key's merchant, mode and kind",
                    ));
                }
                let changed = conn
                    .exec(
                        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                        params![old.to_string(), old_revoked_at.as_millis()],
                    )
                    .map_err(backend)?;
                if changed != 1 {
                    return Err(StoreError::Conflict("the key is already revoked"));
                }
                insert_key(conn, &new)
            })
            .await
    }

    async fn revoke_key(&self, id: ApiKeyId, at: UnixMillis) -> Result<ApiKey, StoreError> {
        self.runtime
            .write(move |conn| {
                // An earlier revocation instant wins: revoking never extends a key's life.
                conn.exec(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND (revoked_at IS NULL OR revoked_at > ?2)",
                    params![id.to_string(), at.as_millis()],
                )
                .map_err(backend)?;
                select_key(conn, id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn idempotency_record(&self, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>, StoreError> {
        let scope = scope.clone();
        self.runtime
            .read(move |conn| crate::idempotency::sqlite::record(conn, &scope))
            .await
    }

    async fn idempotency_release(&self, scope: &IdempotencyScope, lock_token: i64) -> Result<(), StoreError> {
        let scope = scope.clone();
        self.runtime
            .write(move |conn| crate::idempotency::sqlite::release(conn, &scope, lock_token))
            .await
    }

    async fn idempotency_reap(&self, created_before: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        self.runtime
            .write(move |conn| {
                let deleted = conn
                    .exec(
                        "DELETE FROM idempotency_keys WHERE rowid IN (
                             SELECT rowid FROM idempotency_keys WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
                        params![created_before.as_millis(), limit],
                    )
                    .map_err(backend)?;
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
    }

    async fn set_contracts(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        contracts: &[AcquirerContract],
    ) -> Result<(), StoreError> {
        let contracts = contracts.to_vec();
        self.runtime
            .write(move |conn| payments::set_contracts(conn, merchant_id, mode, &contracts))
            .await
    }

    async fn contracts(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<AcquirerContract>, StoreError> {
        self.runtime
            .read(move |conn| payments::contracts(conn, merchant_id, mode))
            .await
    }

    async fn insert_payment(&self, insert: &PaymentInsert) -> Result<InsertPaymentOutcome, StoreError> {
        let insert = insert.clone();
        self.runtime
            .write(move |conn| payments::insert_payment(conn, &insert))
            .await
    }

    async fn payment(&self, merchant_id: MerchantId, mode: Mode, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        self.runtime
            .read(move |conn| {
                payments::payment_where(
                    conn,
                    "id = ?1 AND merchant_id = ?2 AND mode = ?3",
                    &[&id.to_string(), &merchant_id.to_string(), &mode.as_str()],
                )
            })
            .await
    }

    async fn payment_by_id(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        self.runtime
            .read(move |conn| payments::payment_where(conn, "id = ?1", &[&id.to_string()]))
            .await
    }

    async fn payment_by_order(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        order_id: &OrderId,
    ) -> Result<Option<Payment>, StoreError> {
        let order_id = order_id.as_str().to_owned();
        self.runtime
            .read(move |conn| {
                payments::payment_where(
                    conn,
                    "merchant_id = ?1 AND mode = ?2 AND order_id = ?3",
                    &[&merchant_id.to_string(), &mode.as_str(), &order_id],
                )
            })
            .await
    }

    async fn update_payment(&self, update: &PaymentUpdate) -> Result<(), StoreError> {
        let update = update.clone();
        self.runtime
            .write(move |conn| payments::update_payment(conn, &update))
            .await
    }

    async fn payment_transactions(&self, payment_id: PaymentId) -> Result<Vec<PaymentTransaction>, StoreError> {
        self.runtime
            .read(move |conn| {
                payments::transactions_where(
                    conn,
                    "payment_id = ?1 ORDER BY transaction_key",
                    &[&payment_id.to_string()],
                )
            })
            .await
    }

    async fn list_transactions(&self, query: &TransactionQuery) -> Result<Vec<PaymentTransaction>, StoreError> {
        let query = query.clone();
        self.runtime
            .read(move |conn| payments::list_transactions(conn, &query))
            .await
    }

    async fn checkout_card(&self, payment_id: PaymentId) -> Result<Option<Sealed>, StoreError> {
        self.runtime
            .read(move |conn| payments::checkout_card(conn, payment_id))
            .await
    }

    async fn due_inquiries(&self, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError> {
        self.runtime
            .read(move |conn| {
                payments::payments_where(
                    conn,
                    "next_inquiry_at IS NOT NULL AND next_inquiry_at <= ?1
                     AND approval_state IN ('REQUESTED', 'UNKNOWN') ORDER BY next_inquiry_at LIMIT ?2",
                    &[&now.as_millis(), &limit],
                )
            })
            .await
    }

    async fn due_expiries(&self, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError> {
        self.runtime
            .read(move |conn| {
                payments::payments_where(
                    conn,
                    "expires_at IS NOT NULL AND expires_at <= ?1 AND status IN ('READY', 'IN_PROGRESS')
                     AND approval_state = 'NOT_REQUESTED' ORDER BY expires_at LIMIT ?2",
                    &[&now.as_millis(), &limit],
                )
            })
            .await
    }

    async fn due_cancel_retries(&self, now: UnixMillis, limit: u32) -> Result<Vec<PaymentTransaction>, StoreError> {
        self.runtime
            .read(move |conn| {
                payments::transactions_where(
                    conn,
                    "next_attempt_at IS NOT NULL AND next_attempt_at <= ?1 AND status = 'PENDING'
                     ORDER BY next_attempt_at LIMIT ?2",
                    &[&now.as_millis(), &limit],
                )
            })
            .await
    }

    async fn enc_keys(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<StoredEncKey>, StoreError> {
        self.runtime
            .read(move |conn| payments::enc_keys(conn, merchant_id, mode))
            .await
    }

    async fn add_enc_key(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        key: &StoredEncKey,
        retire_previous_at: UnixMillis,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let idempotency = idempotency.cloned();
        self.runtime
            .write(move |conn| {
                if let Some(write) = &idempotency {
                    crate::idempotency::sqlite::apply(conn, write)?;
                }
                payments::add_enc_key(conn, merchant_id, mode, &key, retire_previous_at)
            })
            .await
    }

    async fn audit_ledger(&self) -> Result<LedgerAudit, StoreError> {
        self.runtime.read_long(|conn| payments::audit_ledger(conn)).await
    }

    async fn merchant_settings(&self, merchant_id: MerchantId, mode: Mode) -> Result<MerchantSettings, StoreError> {
        self.runtime
            .read(move |conn| outbox::merchant_settings(conn, merchant_id, mode))
            .await
    }

    async fn set_merchant_settings(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        settings: &MerchantSettings,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let settings = settings.clone();
        self.runtime
            .write(move |conn| outbox::set_merchant_settings(conn, merchant_id, mode, &settings, now))
            .await
    }

    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError> {
        let endpoint = endpoint.clone();
        let idempotency = idempotency.cloned();
        self.runtime
            .write(move |conn| {
                if let Some(write) = &idempotency {
                    crate::idempotency::sqlite::apply(conn, write)?;
                }
                outbox::insert_endpoint(conn, &endpoint)
            })
            .await
    }

    async fn endpoint(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        id: WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.runtime
            .read(move |conn| outbox::endpoint_by_id(conn, merchant_id, mode, id))
            .await
    }

    async fn list_endpoints(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.runtime
            .read(move |conn| {
                outbox::endpoints_where(
                    conn,
                    "merchant_id = ?1 AND mode = ?2 AND status <> 'DELETED' ORDER BY id",
                    &[&merchant_id.to_string(), &mode.as_str()],
                )
            })
            .await
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError> {
        let endpoint = endpoint.clone();
        let idempotency = idempotency.cloned();
        self.runtime
            .write(move |conn| {
                if let Some(write) = &idempotency {
                    crate::idempotency::sqlite::apply(conn, write)?;
                }
                outbox::update_endpoint(conn, &endpoint)
            })
            .await
    }

    async fn insert_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.runtime
            .write(move |conn| outbox::insert_new_event(conn, &event))
            .await
    }

    async fn claim_deliveries(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        lock_token: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.runtime
            .write(move |conn| outbox::claim(conn, now, lease_until, lock_token, limit))
            .await
    }

    async fn complete_delivery(
        &self,
        lock_token: i64,
        outcome: &AttemptOutcome,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let outcome = outcome.clone();
        self.runtime
            .write(move |conn| outbox::complete(conn, lock_token, &outcome, now))
            .await
    }

    async fn list_events(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.runtime
            .read(move |conn| {
                // "~" sorts after every ULID character, so no cursor means "from the newest".
                let before = before.map(|id| id.to_string()).unwrap_or_else(|| "evt_~".to_owned());
                outbox::events_where(
                    conn,
                    "merchant_id = ?1 AND mode = ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4",
                    &[&merchant_id.to_string(), &mode.as_str(), &before, &limit],
                )
            })
            .await
    }

    async fn event(&self, merchant_id: MerchantId, mode: Mode, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.runtime
            .read(move |conn| {
                Ok(outbox::events_where(
                    conn,
                    "id = ?1 AND merchant_id = ?2 AND mode = ?3",
                    &[&id.to_string(), &merchant_id.to_string(), &mode.as_str()],
                )?
                .into_iter()
                .next())
            })
            .await
    }

    async fn event_deliveries(&self, event_id: EventId) -> Result<Vec<Delivery>, StoreError> {
        self.runtime
            .read(move |conn| {
                outbox::deliveries_where(conn, "event_id = ?1 ORDER BY created_at, id", &[&event_id.to_string()])
            })
            .await
    }

    async fn endpoint_deliveries(
        &self,
        endpoint_id: WebhookEndpointId,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.runtime
            .read(move |conn| {
                outbox::deliveries_where(
                    conn,
                    "endpoint_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2",
                    &[&endpoint_id.to_string(), &limit],
                )
            })
            .await
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let delivery_id = delivery_id.to_owned();
        self.runtime
            .read(move |conn| outbox::attempts(conn, &delivery_id))
            .await
    }

    async fn resend_event(
        &self,
        event: &StoredEvent,
        notification: Option<&NotificationTarget>,
        resend: u32,
        now: UnixMillis,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<u32, StoreError> {
        let event = event.clone();
        let notification = notification.cloned();
        let idempotency = idempotency.cloned();
        self.runtime
            .write(move |conn| {
                if let Some(write) = &idempotency {
                    crate::idempotency::sqlite::apply(conn, write)?;
                }
                outbox::resend(conn, &event, notification.as_ref(), resend, now)
            })
            .await
    }

    async fn insert_checkout_session(&self, session: &CheckoutSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.runtime.write(move |conn| checkout::insert(conn, &session)).await
    }

    async fn checkout_session(&self, payment_id: PaymentId) -> Result<Option<CheckoutSession>, StoreError> {
        self.runtime.read(move |conn| checkout::get(conn, payment_id)).await
    }

    async fn update_checkout_session(&self, session: &CheckoutSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.runtime.write(move |conn| checkout::update(conn, &session)).await
    }
}
