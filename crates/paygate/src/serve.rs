//! `paygate serve`: open the store, create the demo merchant on a new database, serve until SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::Context;
use paygate_app::App;
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_store::OpenMode;

use crate::config::Config;

pub async fn run(mut config: Config, open_mode: OpenMode) -> anyhow::Result<()> {
    let armed = paygate_app::failpoint::arm_from_env().map_err(|e| anyhow::anyhow!(e))?;
    if !armed.is_empty() {
        tracing::warn!(
            ?armed,
            "fail points are armed: this process will abort itself on purpose (fault testing only)"
        );
    }
    if !config.database.migrate_on_start {
        tracing::info!("database.migrate_on_start is off; the schema must already be current");
    }
    // Bound first, so links the gateway hands out (checkout pages, receipts) name the real port even with port 0.
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    config.server.listen = address;
    let (store, report, app) = crate::cli::open(&config, open_mode).await?;
    let url = crate::cli::database_url(&config)?;
    tracing::info!(database = %url, backend = store.backend().as_str(), applied = ?report.applied, "database ready");
    if report.was_empty {
        create_demo_merchant(&app, &config).await?;
    }
    // Signal handlers go in before the "listening" line: a SIGTERM that arrives right after it must be a graceful
    // stop, not the default action (immediate death).
    let shutdown = shutdown_signal()?;
    let state = paygate_api::AppState::new(app.clone(), config.api()).context("cannot set up metrics")?;
    let mut router = paygate_api::router(state);
    if let Some(bank) = app.banks().sandbox() {
        // The in-process sandbox bank's own routes (`/bank/…`, BANK-PROTOCOL.md): deposits a test or a person makes
        // there are notified, signed, to this gateway's `/bank-notifications/test`, like a bank's 입금통보.
        let simulator = paygate_connectors::http::BankSimulator::with_bank(
            paygate_connectors::http::BankSimConfig {
                notify_url: Some(format!("http://{address}/bank-notifications/test")),
                notify_secret: app.banks().notify_secret(Mode::Test).unwrap_or_default().to_vec(),
                faults: paygate_connectors::bank_notify::NotificationFaults {
                    lost_per_mille: config.banks.notification_lost_per_mille,
                    duplicate_per_mille: config.banks.notification_duplicate_per_mille,
                    delayed_per_mille: config.banks.notification_delayed_per_mille,
                    delay_ms: config.banks.notification_delay_ms,
                    wrong_amount_per_mille: 0,
                    seed: config.banks.fault_seed,
                },
                ..Default::default()
            },
            bank.clone(),
        );
        router = router.merge(simulator.routes());
    }
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!(
        "paygate listening on http://{address} ({} database)",
        store.backend().as_str()
    );
    tracing::info!(%address, "listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reaper = tokio::spawn(reap_idempotency_keys(
        app.clone(),
        config.api().idempotency,
        stop_rx.clone(),
    ));
    let workers = tokio::spawn(run_payment_workers(
        app.clone(),
        config.payments.worker_interval_ms,
        stop_rx.clone(),
    ));
    let deliveries = tokio::spawn(run_delivery_worker(
        app.clone(),
        config.outbox.worker_interval_ms,
        stop_rx.clone(),
    ));
    let vault = tokio::spawn(refresh_vault(app.clone(), stop_rx));
    paygate_api::serve(listener, router, &config.api(), shutdown).await?;
    let _ = stop_tx.send(true);
    let _ = reaper.await;
    let _ = workers.await;
    let _ = deliveries.await;
    let _ = vault.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The demo merchant's (fictitious, valid-looking) business registration number.
pub const DEMO_BUSINESS_NUMBER: &str = "1208147521";

async fn create_demo_merchant(app: &App, config: &Config) -> anyhow::Result<()> {
    let created = app.create_merchant("Demo Shop").await?;
    // A sandbox business profile, so the demo merchant's cash receipts can be tried at once.
    let profile = paygate_domain::merchant::BusinessProfile::parse(
        created.merchant.id,
        DEMO_BUSINESS_NUMBER,
        "김데모",
        "서울특별시 중구 세종대로 110 (sandbox)",
        paygate_app::Clock::now(&paygate_app::clock::SystemClock),
    )
    .map_err(|e| anyhow::anyhow!("the demo business profile: {e}"))?;
    app.set_business_profile(&profile)
        .await
        .map_err(|e| anyhow::anyhow!("the demo business profile: {e}"))?;
    let secret = created
        .key(Mode::Test, KeyKind::Secret)
        .map(|k| k.secret.expose_secret().to_owned());
    let client = created
        .key(Mode::Test, KeyKind::Client)
        .map(|k| k.secret.expose_secret().to_owned());
    let (Some(secret), Some(client)) = (secret, client) else {
        anyhow::bail!("the demo merchant was created without test keys");
    };
    // Printed on stdout, never logged: the logger would redact it, and keys do not belong in log files.
    println!("paygate: new database; created the demo merchant (its test keys are shown only now):");
    println!("  mId:             {}", created.merchant.id);
    println!("  test secret key: {secret}");
    println!("  test client key: {client}");
    println!(
        "  try: curl -u {secret}: http://{}/v1/merchants/me",
        config.server.listen
    );
    Ok(())
}

/// Deletes idempotency records past their retention, in bounded batches, until stopped.
async fn reap_idempotency_keys(
    app: App,
    config: paygate_api::config::IdempotencyConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = Duration::from_secs(u64::from(config.reap_interval_secs.max(1)));
    let retention_secs = u64::from(config.retention_hours) * 3600;
    // At most this many batches per pass, so one pass cannot monopolise the writer.
    const BATCHES_PER_PASS_MAX: u32 = 10;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let cutoff = paygate_app::Clock::now(app.clock().as_ref()).saturating_sub_secs(retention_secs);
        for _ in 0..BATCHES_PER_PASS_MAX {
            match app.store().idempotency_reap(cutoff, config.reap_batch_max).await {
                Ok(deleted) if deleted >= u64::from(config.reap_batch_max) => continue,
                Ok(deleted) => {
                    if deleted > 0 {
                        tracing::debug!(deleted, "reaped idempotency keys");
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "idempotency reaper failed; will retry");
                    break;
                }
            }
        }
    }
}

/// Reloads the vault's data keys every `vault.refresh_interval_ms`, so a rotation another process started is sealed
/// under within that time.
async fn refresh_vault(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_millis(u64::from(app.vault_config().refresh_interval_ms.max(10)));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if let Err(error) = app.vault_refresh().await {
            tracing::warn!(%error, "reloading the vault's data keys failed; will retry");
        }
    }
}

/// Expires payments, resolves unknown outcomes and retries cancels until stopped. A pass that found a full batch is
/// followed at once by another; otherwise the worker sleeps for the interval.
async fn run_payment_workers(app: App, interval_ms: u32, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_millis(u64::from(interval_ms.max(10)));
    loop {
        let busy = match app.run_workers_once().await {
            Ok(report) => {
                if !report.is_idle() {
                    tracing::debug!(?report, "payment workers");
                }
                let batch = app.payment_config().worker_batch_max;
                report.expired >= batch || report.inquiries >= batch || report.cancel_retries >= batch
            }
            Err(error) => {
                tracing::warn!(%error, "payment worker pass failed; will retry");
                false
            }
        };
        if *stop.borrow() {
            return;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Delivers webhooks and notifications from the outbox until stopped; a full batch is followed at once by another.
async fn run_delivery_worker(app: App, interval_ms: u32, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_millis(u64::from(interval_ms.max(10)));
    loop {
        let busy = match app.deliver_due().await {
            Ok(report) => report.attempted >= app.outbox_config().batch_max,
            Err(error) => {
                tracing::warn!(%error, "delivery pass failed; will retry");
                false
            }
        };
        if *stop.borrow() {
            return;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Installs the SIGINT/SIGTERM handlers now and returns a future that resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested; finishing requests in flight");
    })
}
