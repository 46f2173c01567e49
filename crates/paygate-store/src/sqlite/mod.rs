//! The SQLite store: the embedded default.
//!
//! Pragmas are fixed here, not taken from the URL: WAL (readers never block the writer), `synchronous=FULL`
//! (a commit survives power loss), foreign keys on, and a busy timeout for other processes holding the lock.
//! Write transactions start with `BEGIN IMMEDIATE` so a second process fails fast on the lock instead of
//! deadlocking on an upgrade from a read lock.

mod runtime;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OpenFlags};

use crate::db::{Cell, Db, Dialect, Row, Value};
use crate::migrate::{self, Migration, MigrationReport};
use crate::{Backend, OpenMode, PoolStats, Store, StoreError, StoreOptions};
use runtime::Runtime;

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

pub(crate) const MIGRATIONS: [Migration; 16] = [
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
    Migration {
        version: 7,
        name: "integer_widths",
        sql: include_str!("../../migrations/sqlite/0007_integer_widths.sql"),
    },
    Migration {
        version: 8,
        name: "toss_fields",
        sql: include_str!("../../migrations/sqlite/0008_toss_fields.sql"),
    },
    Migration {
        version: 9,
        name: "billing_keys",
        sql: include_str!("../../migrations/sqlite/0009_billing_keys.sql"),
    },
    Migration {
        version: 10,
        name: "billing_auths",
        sql: include_str!("../../migrations/sqlite/0010_billing_auths.sql"),
    },
    Migration {
        version: 11,
        name: "vault_data_keys",
        sql: include_str!("../../migrations/sqlite/0011_vault_data_keys.sql"),
    },
    Migration {
        version: 12,
        name: "bank_methods",
        sql: include_str!("../../migrations/sqlite/0012_bank_methods.sql"),
    },
    Migration {
        version: 13,
        name: "bank_refunds",
        sql: include_str!("../../migrations/sqlite/0013_bank_refunds.sql"),
    },
    Migration {
        version: 14,
        name: "hosted_bank_methods",
        sql: include_str!("../../migrations/sqlite/0014_hosted_bank_methods.sql"),
    },
    Migration {
        version: 15,
        name: "cash_receipts",
        sql: include_str!("../../migrations/sqlite/0015_cash_receipts.sql"),
    },
    Migration {
        version: 16,
        name: "cash_receipt_requests",
        sql: include_str!("../../migrations/sqlite/0016_cash_receipt_requests.sql"),
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
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    migration.version,
                    migration.name,
                    migrate::checksum(migration.sql),
                    migrate::now_millis()
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

/// One connection as a [`Db`]: the statements run at once, on the thread that owns the connection, so the futures of
/// an operation never wait and [`run`] completes them in one poll.
pub(crate) struct SqliteDb<'c>(&'c Connection);

impl Db for SqliteDb<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let changed = self
            .0
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(params)))
            .map_err(backend)?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    async fn query(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.0.prepare_cached(sql).map_err(backend)?;
        let columns = crate::db::columns(sql, || {
            statement.column_names().into_iter().map(str::to_owned).collect()
        });
        let mut rows = statement.query(rusqlite::params_from_iter(params)).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            let cells = (0..columns.len())
                .map(|index| {
                    Ok(match row.get_ref(index).map_err(backend)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(value) => Cell::Int(value),
                        ValueRef::Text(text) => Cell::Text(
                            String::from_utf8(text.to_vec())
                                .map_err(|_| StoreError::Corrupt(format!("column {}: not UTF-8", columns[index])))?,
                        ),
                        ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
                        ValueRef::Real(_) => {
                            return Err(StoreError::Corrupt(format!("column {}: a real number", columns[index])))
                        }
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(Row::new(columns.clone(), cells));
        }
        Ok(out)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(value) => ToSqlOutput::Borrowed(ValueRef::Integer(*value)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Blob(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

/// Completes an operation's future on SQLite, where nothing it awaits ever waits (see [`SqliteDb`]).
pub(crate) fn run<T>(operation: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let mut operation = std::pin::pin!(operation);
    match operation.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => Err(StoreError::Backend("a SQLite operation waited".into())),
    }
}

/// The transactions of [`crate::db::aggregate!`]: what an operation runs in.
impl SqliteStore {
    /// On the calling thread with a pooled read connection (a reader thread when every pooled one is busy); each
    /// statement sees the latest commit. For short reads: lookups and bounded pages.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteDb<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.runtime.read(move |conn| work(&SqliteDb(conn))).await
    }

    /// On a reader thread, never the calling one (a snapshot may scan whole tables), in one read transaction:
    /// every statement sees the same commit.
    pub(crate) async fn snapshot<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteDb<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.runtime
            .read_long(move |conn| {
                conn.execute_batch("BEGIN").map_err(backend)?;
                let outcome = work(&SqliteDb(conn));
                conn.execute_batch("COMMIT").map_err(backend)?;
                outcome
            })
            .await
    }

    /// On the writer thread, in a savepoint of its group commit: kept if `work` returns `Ok`, rolled back if not.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteDb<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.runtime.write(move |conn| work(&SqliteDb(conn))).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.runtime
            .read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
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
}
