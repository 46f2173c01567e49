//! Reference ceilings: what this box's database does with the same durability when nothing else is in the way.
//!
//! The figure is the rate of durable insert transactions of a minimal payment row (an ID, the merchant, the
//! orderId with its uniqueness, the amount, a status, a time): one row per committed transaction, the way a
//! naive gateway would write. SQLite runs in WAL with `synchronous=FULL` on one connection (SQLite has one writer);
//! PostgreSQL with `synchronous_commit=on` over `concurrency` connections, like the gateway's pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::procs::{pg_connect, random_hex, Backend, Database, Setup};

#[derive(Clone, Debug)]
pub struct Ceiling {
    pub backend: Backend,
    pub concurrency: usize,
    pub transactions: u64,
    pub elapsed: Duration,
    /// Latency of each durable insert, in µs: the disk's own tail shows here.
    pub latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant bounds are valid")
}

impl Ceiling {
    pub fn per_second(&self) -> f64 {
        self.transactions as f64 / self.elapsed.as_secs_f64()
    }

    pub fn summary(&self) -> String {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1e3;
        format!(
            "ceiling   raw durable insert transactions on {} ({} connection{}): {:.0}/s; each: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.backend.as_str(),
            self.concurrency,
            if self.concurrency == 1 { "" } else { "s" },
            self.per_second(),
            ms(0.5),
            ms(0.99),
            ms(0.999),
            self.latency.max() as f64 / 1e3
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"backend": self.backend.as_str(), "concurrency": self.concurrency,
                           "transactions": self.transactions, "elapsedMs": self.elapsed.as_millis(),
                           "perSecond": self.per_second(), "p50Us": self.latency.value_at_quantile(0.5),
                           "p99Us": self.latency.value_at_quantile(0.99), "p999Us": self.latency.value_at_quantile(0.999),
                           "maxUs": self.latency.max()})
    }
}

pub async fn measure(setup: &Setup, duration: Duration, concurrency: usize) -> Result<Ceiling> {
    match setup.backend {
        Backend::Sqlite => {
            let dir = tempfile::Builder::new().prefix("paygate-ceiling-").tempdir()?;
            let path = dir.path().join("ceiling.db");
            tokio::task::spawn_blocking(move || sqlite(&path, duration))
                .await
                .context("sqlite ceiling task")?
        }
        Backend::Postgres => postgres(setup, duration, concurrency.max(1)).await,
    }
}

fn sqlite(path: &std::path::Path, duration: Duration) -> Result<Ceiling> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE bench_payments (
             id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, order_id TEXT NOT NULL, amount INTEGER NOT NULL,
             status TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (merchant_id, order_id)) STRICT",
    )?;
    let mut insert = conn.prepare(
        "INSERT INTO bench_payments (id, merchant_id, order_id, amount, status, created_at)
         VALUES (?1, 'mid_bench', ?2, ?3, 'DONE', ?4)",
    )?;
    let started = Instant::now();
    let mut transactions = 0u64;
    let mut latency = histogram();
    while started.elapsed() < duration {
        let seq = i64::try_from(transactions).unwrap_or(i64::MAX);
        let one = Instant::now();
        // Autocommit: each INSERT is its own durable transaction.
        insert.execute(rusqlite::params![
            format!("pay_{seq:026}"),
            format!("order-{seq:010}"),
            1_000 + seq % 9_000,
            crate::scenarios::now_millis()
        ])?;
        let _ = latency.record(u64::try_from(one.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
        transactions += 1;
    }
    Ok(Ceiling {
        backend: Backend::Sqlite,
        concurrency: 1,
        transactions,
        elapsed: started.elapsed(),
        latency,
    })
}

async fn postgres(setup: &Setup, duration: Duration, concurrency: usize) -> Result<Ceiling> {
    let database = Database::create(setup).await?;
    let url = database
        .postgres_url()
        .context("a PostgreSQL database for the ceiling")?;
    let result = async {
        let client = pg_connect(&url).await?;
        client
            .batch_execute(
                "CREATE TABLE bench_payments (
                     id TEXT COLLATE \"C\" PRIMARY KEY, merchant_id TEXT NOT NULL, order_id TEXT NOT NULL,
                     amount BIGINT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
                     UNIQUE (merchant_id, order_id))",
            )
            .await?;
        let count = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let url = url.clone();
            let count = count.clone();
            tasks.push(tokio::spawn(async move {
                let client = pg_connect(&url).await?;
                client.batch_execute("SET synchronous_commit = on").await?;
                let insert = client
                    .prepare(
                        "INSERT INTO bench_payments (id, merchant_id, order_id, amount, status, created_at)
                         VALUES ($1, 'mid_bench', $2, $3, 'DONE', $4)",
                    )
                    .await?;
                let tag = random_hex(3);
                let mut seq = 0i64;
                let mut latency = histogram();
                while started.elapsed() < duration {
                    let one = Instant::now();
                    client
                        .execute(
                            &insert,
                            &[
                                &format!("pay_{tag}_{worker:03}_{seq:016}"),
                                &format!("order-{tag}-{worker}-{seq}"),
                                &(1_000 + seq % 9_000),
                                &crate::scenarios::now_millis(),
                            ],
                        )
                        .await?;
                    let _ = latency.record(u64::try_from(one.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
                    seq += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(latency)
            }));
        }
        let mut latency = histogram();
        for task in tasks {
            let _ = latency.add(task.await??);
        }
        Ok(Ceiling {
            backend: Backend::Postgres,
            concurrency,
            transactions: count.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
            latency,
        })
    }
    .await;
    database.drop_database().await;
    result
}
