//! The PostgreSQL store: several gateway processes on one database.
//!
//! A deadpool pool of `tokio-postgres` connections (no TLS; put the database on a private network or a local
//! socket), each with a server-side `statement_timeout`. Transactions run at READ COMMITTED; every state change is
//! one transaction whose writes are conditional on the state they came from, and races between processes are
//! settled by row locks (`SELECT … FOR UPDATE`, `INSERT … ON CONFLICT`), not by the isolation level.
//!
//! IDs are ULID text in columns with the "C" collation, so they are compared and ordered byte by byte, as in SQLite,
//! whatever the database's default collation.

mod error;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

pub(crate) use self::error::pg_error;
use self::error::{config_error, describe_target, pool_error};
use crate::db::{Cell, Db, Dialect, Row, Value};
use crate::migrate::{self, Migration, MigrationReport};
use crate::{Backend, PoolStats, Store, StoreError, StoreOptions};

pub(crate) const MIGRATIONS: [Migration; 16] = [
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "payments",
        sql: include_str!("../../migrations/postgres/0002_payments.sql"),
    },
    Migration {
        version: 3,
        name: "outbox",
        sql: include_str!("../../migrations/postgres/0003_outbox.sql"),
    },
    Migration {
        version: 4,
        name: "checkout",
        sql: include_str!("../../migrations/postgres/0004_checkout.sql"),
    },
    Migration {
        version: 5,
        name: "idempotency_in_use_cases",
        sql: include_str!("../../migrations/postgres/0005_idempotency_in_use_cases.sql"),
    },
    Migration {
        version: 6,
        name: "redirect_origins",
        sql: include_str!("../../migrations/postgres/0006_redirect_origins.sql"),
    },
    Migration {
        version: 7,
        name: "integer_widths",
        sql: include_str!("../../migrations/postgres/0007_integer_widths.sql"),
    },
    Migration {
        version: 8,
        name: "toss_fields",
        sql: include_str!("../../migrations/postgres/0008_toss_fields.sql"),
    },
    Migration {
        version: 9,
        name: "billing_keys",
        sql: include_str!("../../migrations/postgres/0009_billing_keys.sql"),
    },
    Migration {
        version: 10,
        name: "billing_auths",
        sql: include_str!("../../migrations/postgres/0010_billing_auths.sql"),
    },
    Migration {
        version: 11,
        name: "vault_data_keys",
        sql: include_str!("../../migrations/postgres/0011_vault_data_keys.sql"),
    },
    Migration {
        version: 12,
        name: "bank_methods",
        sql: include_str!("../../migrations/postgres/0012_bank_methods.sql"),
    },
    Migration {
        version: 13,
        name: "bank_refunds",
        sql: include_str!("../../migrations/postgres/0013_bank_refunds.sql"),
    },
    Migration {
        version: 14,
        name: "hosted_bank_methods",
        sql: include_str!("../../migrations/postgres/0014_hosted_bank_methods.sql"),
    },
    Migration {
        version: 15,
        name: "cash_receipts",
        sql: include_str!("../../migrations/postgres/0015_cash_receipts.sql"),
    },
    Migration {
        version: 16,
        name: "cash_receipt_requests",
        sql: include_str!("../../migrations/postgres/0016_cash_receipt_requests.sql"),
    },
];

/// The `pg_advisory_xact_lock` key that serialises migrations between processes ("paygate1" in ASCII).
const MIGRATION_LOCK: i64 = 0x7061_7967_6174_6531;

pub struct PostgresStore {
    pool: Pool,
    /// The connection target without its password, for error messages.
    target: String,
}

impl PostgresStore {
    /// Connects and migrates. The database itself must exist: PostgreSQL databases are created by their operator,
    /// so [`crate::OpenMode`] does not apply.
    pub async fn open(conninfo: &str, options: &StoreOptions) -> Result<(PostgresStore, MigrationReport), StoreError> {
        let store = PostgresStore::connect(conninfo, options)?;
        let report = store.migrate().await?;
        Ok((store, report))
    }

    /// Builds the pool; connections are opened on first use.
    fn connect(conninfo: &str, options: &StoreOptions) -> Result<PostgresStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(conninfo).map_err(|e| config_error(&e))?;
        let target = describe_target(&config);
        let timeout = Duration::from_millis(u64::from(options.postgres_connect_timeout_ms.max(1)));
        config.connect_timeout(timeout);
        let statement_timeout = format!("-c statement_timeout={}", options.postgres_statement_timeout_ms);
        let session_options = match config.get_options().map(str::trim).filter(|o| !o.is_empty()) {
            Some(existing) => format!("{existing} {statement_timeout}"),
            None => statement_timeout,
        };
        config.options(session_options);
        if config.get_application_name().is_none() {
            config.application_name("paygate");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(usize::try_from(options.postgres_pool_max.max(1)).unwrap_or(usize::MAX))
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        Ok(PostgresStore { pool, target })
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| pool_error(e, &self.target))
    }

    /// Applies pending migrations in one transaction. The advisory lock makes processes that start together take
    /// turns, so exactly one applies them and only that one sees an empty database.
    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .await
        .map_err(pg_error)?;
        let applied = tx
            .query("SELECT version, checksum FROM schema_migrations ORDER BY version", &[])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<(i64, String)>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::Schema(format!("unreadable schema_migrations: {e}")))?;
        let mut report = MigrationReport {
            applied: Vec::new(),
            was_empty: applied.is_empty(),
        };
        for migration in migrate::plan(&MIGRATIONS, &applied)? {
            tx.batch_execute(migration.sql)
                .await
                .map_err(|e| StoreError::Schema(format!("migration {} failed: {}", migration.version, pg_error(e))))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                &[
                    &migration.version,
                    &migration.name,
                    &migrate::checksum(migration.sql),
                    &migrate::now_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
            report.applied.push(migration.version);
        }
        tx.commit().await.map_err(pg_error)?;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, "applied PostgreSQL migrations");
        }
        Ok(report)
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A pooled connection, or a transaction on one, as a [`Db`]. Statements are the shared SQLite text with `?N`
/// rewritten to `$N`, prepared once per connection (deadpool's statement cache).
pub(crate) struct Pg<'a, C>(pub &'a C);

impl<C: GenericClient + Sync> Db for Pg<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let statement = self
            .0
            .prepare_cached(&crate::sql::postgres(sql))
            .await
            .map_err(pg_error)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.0.execute(&statement, &params).await.map_err(pg_error)
    }

    async fn prepare(&self, sql: &[&str]) -> Result<(), StoreError> {
        for sql in sql {
            self.0
                .prepare_cached(&crate::sql::postgres(sql))
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }

    async fn query(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, StoreError> {
        let statement = self
            .0
            .prepare_cached(&crate::sql::postgres(sql))
            .await
            .map_err(pg_error)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let rows = self.0.query(&statement, &params).await.map_err(pg_error)?;
        let columns = crate::db::columns(sql, || {
            statement.columns().iter().map(|c| c.name().to_owned()).collect()
        });
        rows.iter().map(|row| pg_row(row, &columns)).collect()
    }
}

fn pg_row(row: &tokio_postgres::Row, columns: &Arc<[String]>) -> Result<Row, StoreError> {
    let cells = row
        .columns()
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let cell = match *column.type_() {
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(index)
                    .map(|v| v.map_or(Cell::Null, Cell::Int)),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(index)
                    .map(|v| v.map_or(Cell::Null, |v| Cell::Int(v.into()))),
                Type::BYTEA => row
                    .try_get::<_, Option<Vec<u8>>>(index)
                    .map(|v| v.map_or(Cell::Null, Cell::Blob)),
                _ => row
                    .try_get::<_, Option<String>>(index)
                    .map(|v| v.map_or(Cell::Null, Cell::Text)),
            };
            cell.map_err(|e| StoreError::Corrupt(format!("column {}: {e}", column.name())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Row::new(columns.clone(), cells))
}

/// Integers bind as the type PostgreSQL inferred for the parameter: `BIGINT` for columns (all are), `INTEGER` for a
/// comparison with a literal; one that does not fit is refused, never wrapped.
impl ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                Type::BOOL => (*value != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound as {ty}").into()),
            },
            Value::Text(text) => text.as_ref().to_sql(ty, out),
            Value::Blob(bytes) => bytes.as_ref().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The transactions of [`crate::db::aggregate!`]: `read` on a pooled connection, `snapshot` in one REPEATABLE READ
/// read-only transaction, `write` in one transaction committed only if the operation returned `Ok` (an error, or a
/// dropped future, rolls it back).
macro_rules! transaction {
    (read, $store:expr, |$db:ident| $operation:expr) => {{
        let client = $store.client().await?;
        let $db = &$crate::postgres::Pg(&client);
        $operation.await
    }};
    (snapshot, $store:expr, |$db:ident| $operation:expr) => {{
        let mut client = $store.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err($crate::postgres::pg_error)?;
        let $db = &$crate::postgres::Pg(&tx);
        let outcome = $operation.await?;
        tx.commit().await.map_err($crate::postgres::pg_error)?;
        Ok(outcome)
    }};
    (write, $store:expr, |$db:ident| $operation:expr) => {{
        let mut tx = $crate::postgres::WriteTransaction::new($store.client().await?);
        let outcome = {
            let $db = &$crate::postgres::Pg(tx.client()?);
            let (began, outcome) = tokio::join!(biased; tx.begin(), $operation);
            began?;
            outcome?
        };
        tx.commit().await?;
        Ok(outcome)
    }};
}
pub(crate) use transaction;

/// A write transaction whose `BEGIN` travels with its first statements instead of costing a round trip of its own
/// (one flush fewer per write; socket writes were 40% of the gateway's CPU per key-in, BENCHMARKS.md).
///
/// The order is the connection's: [`WriteTransaction::begin`] is polled first (by `tokio::join!(biased; …)`) and queues `BEGIN`
/// before the operation's first statement is queued, and the server runs them in that order. `BEGIN` itself cannot
/// fail on a healthy connection, and on a broken one every statement after it fails too, so no statement can run
/// outside the transaction. Dropped before [`WriteTransaction::commit`] succeeded (an error, a cancelled future), the
/// transaction is rolled back before the connection is reused, or the connection is discarded.
pub(crate) struct WriteTransaction {
    client: Option<Object>,
}

impl WriteTransaction {
    pub(crate) fn new(client: Object) -> WriteTransaction {
        WriteTransaction { client: Some(client) }
    }

    /// The connection, until the transaction is committed.
    pub(crate) fn client(&self) -> Result<&Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the transaction was already committed".into()))
    }

    pub(crate) async fn begin(&self) -> Result<(), StoreError> {
        self.client()?.batch_execute("BEGIN").await.map_err(pg_error)
    }

    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        self.client()?.batch_execute("COMMIT").await.map_err(pg_error)?;
        // Committed: the connection goes back to the pool as it is.
        self.client = None;
        Ok(())
    }
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // `ROLLBACK` is queued behind whatever the operation already sent; the connection returns to the pool only
        // once it has been answered. Without a runtime to send it, or if it fails, the connection is discarded.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await.map_err(pg_error)?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        let status = self.pool.status();
        PoolStats {
            connections: count(status.size),
            idle: count(status.available),
            waiting: count(status.waiting),
        }
    }

    async fn close(&self) {
        self.pool.close();
    }
}

/// Needs a server: `PAYGATE_TEST_DATABASE_URL` (only connects; creates nothing).
#[cfg(all(test, feature = "postgres-tests"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_get_the_configured_settings() {
        let url = std::env::var("PAYGATE_TEST_DATABASE_URL").expect("set PAYGATE_TEST_DATABASE_URL");
        let options = StoreOptions {
            postgres_statement_timeout_ms: 1_234,
            postgres_pool_max: 2,
            ..Default::default()
        };
        let store = PostgresStore::connect(&format!("{url}?options=-c%20lock_timeout%3D5s"), &options).unwrap();
        let client = store.client().await.unwrap();
        for (setting, expected) in [
            ("statement_timeout", "1234ms"),
            ("lock_timeout", "5s"),
            ("application_name", "paygate"),
        ] {
            let row = client.query_one(&format!("SHOW {setting}"), &[]).await.unwrap();
            assert_eq!(row.get::<_, String>(0), expected, "{setting}");
        }
        drop(client);
        assert_eq!(
            store.pool_stats(),
            PoolStats {
                connections: 1,
                idle: 1,
                waiting: 0
            }
        );
        store.ping().await.unwrap();
        store.close().await;
        assert!(matches!(store.ping().await, Err(StoreError::Overloaded(_))));
    }
}
