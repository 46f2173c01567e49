//! Helpers for the store's black-box tests: a fresh database on whichever backend the environment selects, and
//! domain values to put in it.
//!
//! `PAYGATE_TEST_DATABASE_URL` unset: SQLite in a fresh temporary directory. Set to an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`: a fresh database `paygate_test_<random hex>` is created through it
//! and dropped (`WITH (FORCE)`) when the [`TestDatabase`] is dropped, even if the test panics. A URL that is set but
//! unreachable fails the test: a suite that quietly ran on nothing would prove nothing.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;
use std::sync::Arc;

use paygate_domain::api_key::{ApiKey, KeyHash, KeyKind, Mode};
use paygate_domain::id::{ApiKeyId, MerchantId, PaymentId};
use paygate_domain::idempotency::{IdempotencyKey, RequestFingerprint};
use paygate_domain::merchant::{Merchant, MerchantName, MerchantStatus};
use paygate_domain::payment::Payment;
use paygate_domain::time::UnixMillis;
use paygate_store::{
    Backend, DatabaseUrl, IdempotencyResource, IdempotencyScope, IdempotencyWrite, MigrationReport, NewApiKey,
    OpenMode, PaymentInsert, Sealed, Store, StoreError, StoreOptions,
};
use tempfile::TempDir;

pub const DATABASE_URL_ENV: &str = "PAYGATE_TEST_DATABASE_URL";

/// The PostgreSQL admin URL from the environment, or `None` for SQLite.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// The backend the environment selects.
pub fn selected_backend() -> Backend {
    if postgres_admin_url().is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Small pools: tests run in parallel against one server with a bounded `max_connections`.
pub fn test_options() -> StoreOptions {
    StoreOptions {
        open_mode: OpenMode::CreateIfMissing,
        sqlite_reader_threads: 2,
        postgres_pool_max: 4,
        ..Default::default()
    }
}

/// An opened store on a fresh database. Fields drop in order: the store first, then the database.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// What opening the fresh database did.
    pub report: MigrationReport,
    pub db: TestDatabase,
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

/// A fresh store on the selected backend.
pub async fn fresh_store() -> TestStore {
    let db = fresh_database().await;
    let (store, report) = db
        .open()
        .await
        .unwrap_or_else(|e| panic!("opening a fresh {} failed: {e}", db.url));
    TestStore { store, report, db }
}

/// A fresh, unopened database on the selected backend (a path that does not exist yet, for SQLite).
pub async fn fresh_database() -> TestDatabase {
    let db = match postgres_admin_url() {
        None => TestDatabase::sqlite(),
        Some(admin_url) => TestDatabase::postgres(&admin_url).await,
    };
    eprintln!("store test backend: {} ({})", db.backend().as_str(), db.url);
    db
}

pub struct TestDatabase {
    pub url: DatabaseUrl,
    guard: Guard,
}

enum Guard {
    Sqlite(TempDir),
    Postgres(PgDropGuard),
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let url = DatabaseUrl::sqlite_file(dir.path().join("paygate.db"));
        TestDatabase {
            url,
            guard: Guard::Sqlite(dir),
        }
    }

    async fn postgres(admin_url: &str) -> TestDatabase {
        let name = format!("paygate_test_{:016x}", rand::random::<u64>());
        let admin = connect(admin_url).await.unwrap_or_else(|e| {
            let e = match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            };
            panic!(
                "{DATABASE_URL_ENV} is set ({}) but PostgreSQL cannot be reached: {e}. \
                 Start the server, or unset {DATABASE_URL_ENV} to test SQLite.",
                DatabaseUrl::Postgres(admin_url.to_owned())
            )
        });
        // CREATE DATABASE copies template1 and fails while another session uses it (a parallel test's CREATE
        // DATABASE), so it is retried a bounded number of times.
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match admin.batch_execute(&format!("CREATE DATABASE {name}")).await {
                Ok(()) => break,
                Err(e) if attempt < 20 => {
                    eprintln!("CREATE DATABASE {name} failed (attempt {attempt}): {e:?}; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) => panic!("cannot create the test database {name}: {e:?}"),
            }
        }
        let url = DatabaseUrl::Postgres(with_database(admin_url, &name));
        TestDatabase {
            url,
            guard: Guard::Postgres(PgDropGuard {
                admin_url: admin_url.to_owned(),
                name,
            }),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.url {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// Opens another store on this database, as another gateway process would.
    pub async fn open(&self) -> Result<(Arc<dyn Store>, MigrationReport), StoreError> {
        paygate_store::open(&self.url, &test_options()).await
    }

    pub async fn open_with(&self, options: &StoreOptions) -> Result<(Arc<dyn Store>, MigrationReport), StoreError> {
        paygate_store::open(&self.url, options).await
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => Some(path.clone()),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// Runs raw SQL on the database behind the store's back (to tamper with it, as an operator might).
    pub async fn execute(&self, sql: &str) {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let (path, batch) = (path.clone(), sql.to_owned());
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(&path)?;
                    conn.busy_timeout(std::time::Duration::from_secs(10))?;
                    conn.execute_batch(&batch)
                })
                .await
                .unwrap_or_else(|e| panic!("raw SQL task failed: {e}"))
                .unwrap_or_else(|e| panic!("raw SQL failed: {e}\n{sql}"));
            }
            DatabaseUrl::Postgres(url) => {
                let client = connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect for raw SQL: {e}"));
                client
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("raw SQL failed: {e:?}\n{sql}"));
            }
        }
    }
}

/// Drops the database when the test ends (or panics). `Drop` cannot await, so it runs on a thread of its own
/// with its own runtime; `WITH (FORCE)` disconnects pools the test left open.
struct PgDropGuard {
    admin_url: String,
    name: String,
}

impl Drop for PgDropGuard {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = connect(&admin_url).await.map_err(|e| e.to_string())?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| format!("{e:?}"))
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

/// A plain connection (not through the store), with its connection task spawned on the current runtime.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The admin URL with its database replaced by `name` (query parameters kept).
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

// Domain values.

pub fn entropy() -> [u8; 10] {
    rand::random()
}

pub fn merchant_at(millis: i64) -> Merchant {
    Merchant {
        id: MerchantId::new(UnixMillis::new(millis), entropy()),
        name: MerchantName::parse("Test Coffee 상점").unwrap_or_else(|e| panic!("{e}")),
        status: MerchantStatus::Active,
        created_at: UnixMillis::new(millis),
    }
}

pub fn new_key(merchant: &Merchant, mode: Mode, kind: KeyKind, millis: i64) -> NewApiKey {
    NewApiKey {
        record: ApiKey {
            id: ApiKeyId::new(UnixMillis::new(millis), entropy()),
            merchant_id: merchant.id,
            mode,
            kind,
            display_prefix: format!("{}_{}_AbCd", mode.as_str(), kind.as_str()),
            created_at: UnixMillis::new(millis),
            revoked_at: None,
        },
        hash: KeyHash::from_bytes(rand::random()),
    }
}

/// One key of each mode and kind.
pub fn four_keys(merchant: &Merchant, millis: i64) -> Vec<NewApiKey> {
    Mode::ALL
        .into_iter()
        .flat_map(|mode| KeyKind::ALL.into_iter().map(move |kind| (mode, kind)))
        .map(|(mode, kind)| new_key(merchant, mode, kind, millis))
        .collect()
}

/// A merchant with four keys, inserted.
pub async fn seeded_merchant(store: &dyn Store, millis: i64) -> (Merchant, Vec<NewApiKey>) {
    let merchant = merchant_at(millis);
    let keys = four_keys(&merchant, millis);
    store
        .insert_merchant(&merchant, &keys)
        .await
        .unwrap_or_else(|e| panic!("seeding a merchant failed: {e}"));
    (merchant, keys)
}

pub fn scope(merchant_id: MerchantId, mode: Mode, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        merchant_id,
        mode,
        key_kind: KeyKind::Secret,
        key: IdempotencyKey::parse(key).unwrap_or_else(|e| panic!("{e}")),
    }
}

/// A new payment's insert, with its sealed checkout card if any.
pub fn payment_insert(payment: &Payment, card: Option<&Sealed>) -> PaymentInsert {
    PaymentInsert {
        checkout_card: card.cloned(),
        ..PaymentInsert::new(payment.clone())
    }
}

/// A claim of `scope` for a request whose fingerprint is `[fingerprint; 32]`, at `now`, locked until `until`,
/// working on `payment_id`.
pub fn claim(
    scope: &IdempotencyScope,
    fingerprint: u8,
    lock_token: i64,
    now: i64,
    until: i64,
    payment_id: PaymentId,
) -> IdempotencyWrite {
    IdempotencyWrite::Claim {
        scope: scope.clone(),
        fingerprint: RequestFingerprint([fingerprint; 32]),
        lock_token,
        locked_until: UnixMillis::new(until),
        resource: IdempotencyResource {
            payment_id,
            focus: None,
        },
        now: UnixMillis::new(now),
    }
}
