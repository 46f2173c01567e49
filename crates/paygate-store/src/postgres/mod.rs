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
mod outbox;
mod payments;
mod rows;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction};
use paygate_domain::api_key::{ApiKey, KeyHash, Mode};
use paygate_domain::id::{ApiKeyId, EventId, MerchantId, PaymentId, WebhookEndpointId};
use paygate_domain::merchant::Merchant;
use paygate_domain::order::OrderId;
use paygate_domain::payment::{Payment, PaymentTransaction};
use paygate_domain::time::UnixMillis;
use tokio_postgres::{IsolationLevel, NoTls};

pub(crate) use self::error::pg_error;
use self::error::{config_error, describe_target, pool_error};
use self::rows::{KEY_COLUMNS, KEY_COLUMN_COUNT, MERCHANT_COLUMNS};
use crate::migrate::{self, Migration, MigrationReport};
use crate::outbox::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, MerchantSettings, NewEvent, NotificationTarget, StoredEvent,
    WebhookEndpoint,
};
use crate::payments::{
    AcquirerContract, InsertPaymentOutcome, LedgerAudit, PaymentInsert, PaymentUpdate, Sealed, StoredEncKey,
    TransactionQuery,
};
use crate::{
    Backend, IdempotencyRecord, IdempotencyScope, IdempotencyWrite, NewApiKey, PoolStats, Store, StoreError,
    StoreOptions,
};

pub(crate) const MIGRATIONS: [Migration; 6] = [
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

    async fn client(&self) -> Result<Object, StoreError> {
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
                    &now_millis(),
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

/// Migration bookkeeping is the only place that reads the clock, and only for a human-readable `applied_at`.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

async fn insert_key(tx: &Transaction<'_>, key: &NewApiKey) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO api_keys (id, merchant_id, mode, kind, key_hash, display_prefix, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(pg_error)?;
    let r = &key.record;
    let revoked_at = r.revoked_at.map(UnixMillis::as_millis);
    tx.execute(
        &statement,
        &[
            &r.id.to_string(),
            &r.merchant_id.to_string(),
            &r.mode.as_str(),
            &r.kind.as_str(),
            &key.hash.as_bytes().as_slice(),
            &r.display_prefix,
            &r.created_at.as_millis(),
            &revoked_at,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
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

    async fn insert_merchant(&self, merchant: &Merchant, keys: &[NewApiKey]) -> Result<(), StoreError> {
        if keys.iter().any(|key| key.record.merchant_id != merchant.id) {
            return Err(StoreError::Conflict("key belongs to another merchant"));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let statement = tx
            .prepare_cached("INSERT INTO merchants (id, name, status, created_at) VALUES ($1, $2, $3, $4)")
            .await
            .map_err(pg_error)?;
        let id = merchant.id.to_string();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
            &id,
            &merchant.name.as_str(),
            &merchant.status.as_str(),
            &merchant.created_at.as_millis(),
        ];
        tx.execute(&statement, &params).await.map_err(pg_error)?;
        for key in keys {
            insert_key(&tx, key).await?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn merchant(&self, id: MerchantId) -> Result<Option<Merchant>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {MERCHANT_COLUMNS} FROM merchants m WHERE m.id = $1"))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&id.to_string()])
            .await
            .map_err(pg_error)?;
        row.map(|row| rows::merchant(&row, 0)).transpose()
    }

    async fn list_merchants(&self, after: Option<MerchantId>, limit: u32) -> Result<Vec<Merchant>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {MERCHANT_COLUMNS} FROM merchants m WHERE m.id > $1 ORDER BY m.id LIMIT $2"
            ))
            .await
            .map_err(pg_error)?;
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let found = client
            .query(&statement, &[&after, &i64::from(limit)])
            .await
            .map_err(pg_error)?;
        found.iter().map(|row| rows::merchant(row, 0)).collect()
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<(ApiKey, Merchant)>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS}, {MERCHANT_COLUMNS} FROM api_keys k
                 JOIN merchants m ON m.id = k.merchant_id WHERE k.key_hash = $1"
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&hash.as_bytes().as_slice()])
            .await
            .map_err(pg_error)?;
        row.map(|row| Ok((rows::key(&row, 0)?, rows::merchant(&row, KEY_COLUMN_COUNT)?)))
            .transpose()
    }

    async fn list_keys(&self, merchant_id: MerchantId) -> Result<Vec<ApiKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.merchant_id = $1 ORDER BY k.id"
            ))
            .await
            .map_err(pg_error)?;
        let found = client
            .query(&statement, &[&merchant_id.to_string()])
            .await
            .map_err(pg_error)?;
        found.iter().map(|row| rows::key(row, 0)).collect()
    }

    async fn key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1"))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&id.to_string()])
            .await
            .map_err(pg_error)?;
        row.map(|row| rows::key(&row, 0)).transpose()
    }

    async fn rotate_key(&self, old: ApiKeyId, old_revoked_at: UnixMillis, new: &NewApiKey) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let old_id = old.to_string();
        // The row lock makes concurrent rotations of one key take turns; the loser sees it revoked.
        let existing = tx
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1 FOR UPDATE"),
                &[&old_id],
            )
            .await
            .map_err(pg_error)?
            .ok_or(StoreError::NotFound)?;
        let existing = rows::key(&existing, 0)?;
        let same_slot = existing.merchant_id == new.record.merchant_id
            && existing.mode == new.record.mode
            && existing.kind == new.record.kind;
        if !same_slot {
            return Err(StoreError::Conflict(
                "the new key must have the old key's merchant, mode and kind",
            ));
        }
        let changed = tx
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&old_id, &old_revoked_at.as_millis()],
            )
            .await
            .map_err(pg_error)?;
        if changed != 1 {
            return Err(StoreError::Conflict("the key is already revoked"));
        }
        insert_key(&tx, new).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn revoke_key(&self, id: ApiKeyId, at: UnixMillis) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        // One statement: an earlier revocation instant wins, so revoking never extends a key's life.
        let statement = client
            .prepare_cached(&format!(
                "UPDATE api_keys k SET revoked_at = LEAST(COALESCE(k.revoked_at, $2), $2) WHERE k.id = $1
                 RETURNING {KEY_COLUMNS}"
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&id.to_string(), &at.as_millis()])
            .await
            .map_err(pg_error)?;
        rows::key(&row.ok_or(StoreError::NotFound)?, 0)
    }

    async fn idempotency_record(&self, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>, StoreError> {
        let client = self.client().await?;
        crate::idempotency::postgres::record(&client, scope).await
    }

    async fn idempotency_release(&self, scope: &IdempotencyScope, lock_token: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        crate::idempotency::postgres::release(&client, scope, lock_token).await
    }

    async fn idempotency_reap(&self, created_before: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        // Bounded, oldest first; rows another reaper (or a claim) holds are skipped rather than waited for.
        let statement = client
            .prepare_cached(
                "DELETE FROM idempotency_keys WHERE (merchant_id, mode, idempotency_key) IN (
                     SELECT merchant_id, mode, idempotency_key FROM idempotency_keys
                     WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(&statement, &[&created_before.as_millis(), &i64::from(limit)])
            .await
            .map_err(pg_error)
    }

    async fn set_contracts(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        contracts: &[AcquirerContract],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        payments::set_contracts(&tx, merchant_id, mode, contracts).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn contracts(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<AcquirerContract>, StoreError> {
        let client = self.client().await?;
        payments::contracts(&client, merchant_id, mode).await
    }

    async fn insert_payment(&self, insert: &PaymentInsert) -> Result<InsertPaymentOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let outcome = payments::insert_payment(&tx, insert).await?;
        match outcome {
            InsertPaymentOutcome::Inserted => tx.commit().await.map_err(pg_error)?,
            // The failed INSERT aborted the transaction; nothing was written.
            InsertPaymentOutcome::DuplicateOrderId => tx.rollback().await.map_err(pg_error)?,
        }
        Ok(outcome)
    }

    async fn payment(&self, merchant_id: MerchantId, mode: Mode, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        let client = self.client().await?;
        // By the primary key alone, owner checked here: with `AND merchant_id = … AND mode = …` in the query, a
        // planner without fresh statistics picked the (merchant_id, mode, order_id) index and filtered every
        // payment of the merchant (BENCHMARKS.md, "lookup on PostgreSQL").
        let found = payments::payment_where(&client, "id = $1", &[&id.to_string()]).await?;
        Ok(found.filter(|p| p.merchant_id == merchant_id && p.mode == mode))
    }

    async fn payment_by_id(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        let client = self.client().await?;
        payments::payment_where(&client, "id = $1", &[&id.to_string()]).await
    }

    async fn payment_by_order(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        order_id: &OrderId,
    ) -> Result<Option<Payment>, StoreError> {
        let client = self.client().await?;
        payments::payment_where(
            &client,
            "merchant_id = $1 AND mode = $2 AND order_id = $3",
            &[&merchant_id.to_string(), &mode.as_str(), &order_id.as_str()],
        )
        .await
    }

    /// One transaction: the conditional payment update, the pending transaction's conditional update, the new
    /// transactions, the ledger postings, the events with their deliveries and the checkout card change. Any failure
    /// (a lost race included) returns before the commit, and dropping the transaction rolls all of it back.
    async fn update_payment(&self, update: &PaymentUpdate) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        payments::update_payment(&tx, update).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn payment_transactions(&self, payment_id: PaymentId) -> Result<Vec<PaymentTransaction>, StoreError> {
        let client = self.client().await?;
        payments::transactions_where(
            &client,
            "payment_id = $1 ORDER BY transaction_key",
            &[&payment_id.to_string()],
        )
        .await
    }

    async fn list_transactions(&self, query: &TransactionQuery) -> Result<Vec<PaymentTransaction>, StoreError> {
        let client = self.client().await?;
        payments::list_transactions(&client, query).await
    }

    async fn checkout_card(&self, payment_id: PaymentId) -> Result<Option<Sealed>, StoreError> {
        let client = self.client().await?;
        payments::checkout_card(&client, payment_id).await
    }

    // The worker queues are plain reads: two workers may pick the same row, and the version check of
    // `update_payment` lets only one of them act on it.

    async fn due_inquiries(&self, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError> {
        let client = self.client().await?;
        payments::payments_where(
            &client,
            "next_inquiry_at IS NOT NULL AND next_inquiry_at <= $1
             AND approval_state IN ('REQUESTED', 'UNKNOWN') ORDER BY next_inquiry_at, id LIMIT $2",
            &[&now.as_millis(), &i64::from(limit)],
        )
        .await
    }

    async fn due_expiries(&self, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError> {
        let client = self.client().await?;
        payments::payments_where(
            &client,
            "expires_at IS NOT NULL AND expires_at <= $1 AND status IN ('READY', 'IN_PROGRESS')
             AND approval_state = 'NOT_REQUESTED' ORDER BY expires_at, id LIMIT $2",
            &[&now.as_millis(), &i64::from(limit)],
        )
        .await
    }

    async fn due_cancel_retries(&self, now: UnixMillis, limit: u32) -> Result<Vec<PaymentTransaction>, StoreError> {
        let client = self.client().await?;
        payments::transactions_where(
            &client,
            "next_attempt_at IS NOT NULL AND next_attempt_at <= $1 AND status = 'PENDING'
             ORDER BY next_attempt_at, transaction_key LIMIT $2",
            &[&now.as_millis(), &i64::from(limit)],
        )
        .await
    }

    async fn enc_keys(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<StoredEncKey>, StoreError> {
        let client = self.client().await?;
        payments::enc_keys(&client, merchant_id, mode).await
    }

    async fn add_enc_key(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        key: &StoredEncKey,
        retire_previous_at: UnixMillis,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        if let Some(write) = idempotency {
            crate::idempotency::postgres::apply(&tx, write).await?;
        }
        payments::add_enc_key(&tx, merchant_id, mode, key, retire_previous_at).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn audit_ledger(&self) -> Result<LedgerAudit, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let audit = payments::audit_ledger(&tx).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(audit)
    }

    async fn merchant_settings(&self, merchant_id: MerchantId, mode: Mode) -> Result<MerchantSettings, StoreError> {
        let client = self.client().await?;
        outbox::merchant_settings(&client, merchant_id, mode).await
    }

    async fn set_merchant_settings(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        settings: &MerchantSettings,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        outbox::set_merchant_settings(&client, merchant_id, mode, settings, now).await
    }

    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        if let Some(write) = idempotency {
            crate::idempotency::postgres::apply(&tx, write).await?;
        }
        outbox::insert_endpoint(&tx, endpoint).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn endpoint(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        id: WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let client = self.client().await?;
        let found = outbox::endpoints_where(
            &client,
            "e.id = $1 AND e.merchant_id = $2 AND e.mode = $3",
            &[&id.to_string(), &merchant_id.to_string(), &mode.as_str()],
        )
        .await?;
        Ok(found.into_iter().next())
    }

    async fn list_endpoints(&self, merchant_id: MerchantId, mode: Mode) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let client = self.client().await?;
        outbox::endpoints_where(
            &client,
            "e.merchant_id = $1 AND e.mode = $2 AND e.status <> 'DELETED' ORDER BY e.id",
            &[&merchant_id.to_string(), &mode.as_str()],
        )
        .await
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        if let Some(write) = idempotency {
            crate::idempotency::postgres::apply(&tx, write).await?;
        }
        outbox::update_endpoint(&tx, endpoint).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn insert_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        outbox::insert_new_event(&tx, event).await?;
        tx.commit().await.map_err(pg_error)
    }

    /// One `UPDATE … FOR UPDATE SKIP LOCKED` statement leases the rows, so claims from any number of processes never
    /// take the same delivery; see `postgres/outbox.rs`.
    async fn claim_deliveries(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        lock_token: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let claimed = outbox::claim(&tx, now, lease_until, lock_token, limit).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(claimed)
    }

    async fn complete_delivery(
        &self,
        lock_token: i64,
        outcome: &AttemptOutcome,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        outbox::complete(&tx, lock_token, outcome, now).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn list_events(
        &self,
        merchant_id: MerchantId,
        mode: Mode,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let before = before.map(|id| id.to_string());
        outbox::events_where(
            &client,
            "merchant_id = $1 AND mode = $2 AND ($3::TEXT IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
            &[&merchant_id.to_string(), &mode.as_str(), &before, &i64::from(limit)],
        )
        .await
    }

    async fn event(&self, merchant_id: MerchantId, mode: Mode, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let found = outbox::events_where(
            &client,
            "id = $1 AND merchant_id = $2 AND mode = $3",
            &[&id.to_string(), &merchant_id.to_string(), &mode.as_str()],
        )
        .await?;
        Ok(found.into_iter().next())
    }

    async fn event_deliveries(&self, event_id: EventId) -> Result<Vec<Delivery>, StoreError> {
        let client = self.client().await?;
        outbox::deliveries_where(
            &client,
            "event_id = $1 ORDER BY created_at, id",
            &[&event_id.to_string()],
        )
        .await
    }

    async fn endpoint_deliveries(
        &self,
        endpoint_id: WebhookEndpointId,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let client = self.client().await?;
        outbox::deliveries_where(
            &client,
            "endpoint_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            &[&endpoint_id.to_string(), &i64::from(limit)],
        )
        .await
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let client = self.client().await?;
        outbox::attempts(&client, delivery_id).await
    }

    async fn resend_event(
        &self,
        event: &StoredEvent,
        notification: Option<&NotificationTarget>,
        resend: u32,
        now: UnixMillis,
        idempotency: Option<&IdempotencyWrite>,
    ) -> Result<u32, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        if let Some(write) = idempotency {
            crate::idempotency::postgres::apply(&tx, write).await?;
        }
        let created = outbox::resend(&tx, event, notification, resend, now).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(created)
    }

    async fn insert_checkout_session(&self, session: &crate::CheckoutSession) -> Result<(), StoreError> {
        let client = self.client().await?;
        insert_checkout_session(&client, session).await
    }

    async fn checkout_session(
        &self,
        payment_id: paygate_domain::id::PaymentId,
    ) -> Result<Option<crate::CheckoutSession>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT payment_id, entry, return_url, success_url, fail_url, challenge_otp_hash, challenge_attempts,
                     challenge_expires_at, created_at, version
                 FROM checkout_sessions WHERE payment_id = $1",
                &[&payment_id.to_string()],
            )
            .await
            .map_err(pg_error)?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |what: &str| StoreError::Corrupt(format!("checkout_sessions.{what}"));
        let id: String = row.try_get(0).map_err(pg_error)?;
        let entry: String = row.try_get(1).map_err(pg_error)?;
        let attempts: i32 = row.try_get(6).map_err(pg_error)?;
        Ok(Some(crate::CheckoutSession {
            payment_id: paygate_domain::id::PaymentId::parse(&id).map_err(|_| corrupt("payment_id"))?,
            entry: crate::CheckoutEntry::parse(&entry).ok_or_else(|| corrupt("entry"))?,
            return_url: row.try_get(2).map_err(pg_error)?,
            success_url: row.try_get(3).map_err(pg_error)?,
            fail_url: row.try_get(4).map_err(pg_error)?,
            challenge_otp_hash: row.try_get(5).map_err(pg_error)?,
            challenge_attempts: u32::try_from(attempts).map_err(|_| corrupt("challenge_attempts"))?,
            challenge_expires_at: row.try_get::<_, Option<i64>>(7).map_err(pg_error)?.map(UnixMillis::new),
            created_at: UnixMillis::new(row.try_get(8).map_err(pg_error)?),
            version: row.try_get(9).map_err(pg_error)?,
        }))
    }

    async fn update_checkout_session(&self, session: &crate::CheckoutSession) -> Result<(), StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE checkout_sessions SET challenge_otp_hash = $2, challenge_attempts = $3,
                     challenge_expires_at = $4, version = $5
                 WHERE payment_id = $1 AND version = $6",
                &[
                    &session.payment_id.to_string(),
                    &session.challenge_otp_hash,
                    &i32::try_from(session.challenge_attempts).unwrap_or(i32::MAX),
                    &session.challenge_expires_at.map(UnixMillis::as_millis),
                    &session.version,
                    &(session.version - 1),
                ],
            )
            .await
            .map_err(pg_error)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict("the checkout session changed since it was read"))
        }
    }
}

/// Writes a new checkout session inside the caller's transaction (or on its own).
pub(super) async fn insert_checkout_session(
    client: &impl deadpool_postgres::GenericClient,
    session: &crate::CheckoutSession,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO checkout_sessions (payment_id, entry, return_url, success_url, fail_url, challenge_otp_hash,
                         challenge_attempts, challenge_expires_at, created_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &session.payment_id.to_string(),
                &session.entry.as_str(),
                &session.return_url,
                &session.success_url,
                &session.fail_url,
                &session.challenge_otp_hash,
                &i32::try_from(session.challenge_attempts).unwrap_or(i32::MAX),
                &session.challenge_expires_at.map(UnixMillis::as_millis),
                &session.created_at.as_millis(),
                &session.version,
            ],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
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
