//! Test support for every crate's tests: a fresh database per test, on the backend the environment selects.
//!
//! `PAYGATE_TEST_DATABASE_URL` unset → SQLite in a new temporary directory. Set to `postgres://…/postgres` → a new
//! database `paygate_t_<random>` is created through that URL and dropped when the [`TestDatabase`] drops. An
//! unreachable PostgreSQL is a test failure, never a silent skip.

use std::sync::Arc;

use crate::{DatabaseUrl, MigrationReport, OpenMode, Store, StoreOptions};

pub struct TestDatabase {
    pub url: DatabaseUrl,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// # Panics
    /// If PostgreSQL is selected but cannot be reached: tests must fail loudly, not skip.
    #[allow(clippy::panic, clippy::expect_used)]
    pub async fn new() -> TestDatabase {
        match std::env::var("PAYGATE_TEST_DATABASE_URL") {
            Ok(admin) if admin.starts_with("postgres") => {
                let name = format!("paygate_t_{}", random_suffix());
                let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("PAYGATE_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
                let driver = tokio::spawn(connection);
                create_database(&client, &name).await;
                drop(client);
                let _ = driver.await;
                let base = admin
                    .rsplit_once('/')
                    .map(|(base, _)| base.to_owned())
                    .unwrap_or_else(|| admin.clone());
                eprintln!("backend: postgres (database {name})");
                TestDatabase {
                    url: DatabaseUrl::Postgres(format!("{base}/{name}")),
                    admin: Some((admin, name)),
                    _dir: None,
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("temporary directory");
                eprintln!("backend: sqlite ({})", dir.path().display());
                TestDatabase {
                    url: DatabaseUrl::Sqlite(dir.path().join("paygate.db")),
                    admin: None,
                    _dir: Some(dir),
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.url, DatabaseUrl::Postgres(_))
    }

    /// Opens (creating and migrating) the database with default bounds.
    #[allow(clippy::expect_used)]
    pub async fn open(&self) -> (Arc<dyn Store>, MigrationReport) {
        let options = StoreOptions {
            open_mode: OpenMode::CreateIfMissing,
            ..StoreOptions::default()
        };
        crate::open(&self.url, &options).await.expect("open the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.admin.take() else { return };
        // Drop may run inside or outside a runtime; a thread with its own runtime works in both.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// `CREATE DATABASE` copies `template1` and fails while another session is using it (for instance another test's
/// `CREATE DATABASE` at the same instant), so it is retried a bounded number of times.
#[allow(clippy::panic)]
pub async fn create_database(client: &tokio_postgres::Client, name: &str) {
    const ATTEMPTS_MAX: u32 = 20;
    for attempt in 1..=ATTEMPTS_MAX {
        match client.batch_execute(&format!("CREATE DATABASE {name}")).await {
            Ok(()) => return,
            Err(error) if attempt < ATTEMPTS_MAX => {
                eprintln!("CREATE DATABASE {name} failed (attempt {attempt}): {error:?}; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(error) => panic!("cannot create the test database {name}: {error:?}"),
        }
    }
}

fn random_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed =
        nanos ^ (u128::from(std::process::id()) << 64) ^ (u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 100);
    format!("{:x}", mixed & ((1u128 << 96) - 1))
}
