//! Command-line interface: `serve`, `migrate`, `merchant …`, `key …`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use paygate_app::{App, SystemClock};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::id::{ApiKeyId, MerchantId};
use paygate_store::{DatabaseUrl, MigrationReport, OpenMode, Store};
use serde_json::json;

use crate::config::{Config, DEFAULT_DATA_DIR};

#[derive(Parser, Debug)]
#[command(name = "paygate", version, about = "paygate: an open-source online payment gateway")]
pub struct Cli {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, global = true, env = "PAYGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Where the database is: shared by every subcommand that touches it.
#[derive(Args, Debug, Clone, Default)]
pub struct DatabaseArgs {
    /// Directory for the embedded SQLite database and the secrets file [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `postgres://USER@HOST/DB` or `sqlite://PATH`; overrides --data-dir for the database.
    #[arg(long, env = "PAYGATE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Create the database if it does not exist (implied for the default data directory).
        #[arg(long)]
        init: bool,
    },
    /// Create the database if needed and apply migrations.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Merchants.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// The double-entry ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The card vault: its data keys and their rotation.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Run the sandbox acquirers A, B and C as their own process (JSON over HTTP), with fault injection.
    AcquirerSim(SimArgs),
    /// Run the sandbox bank (virtual accounts, deposits and their notifications, refunds; BANK-PROTOCOL.md) as its
    /// own process, or make a deposit at a running one.
    BankSim {
        #[command(subcommand)]
        command: Option<BankSimCommand>,
        #[command(flatten)]
        args: BankSimArgs,
    },
    /// Print the OpenAPI 3.1 document of the API (what `GET /v1/openapi.json` serves).
    Openapi,
}

#[derive(Args, Debug)]
struct BankSimArgs {
    /// Address to listen on; port 0 picks a free port (printed).
    #[arg(long, default_value = "127.0.0.1:9200")]
    listen: std::net::SocketAddr,
    /// Where deposit notifications (입금통보) are posted; without it deposits are found through the feed only.
    #[arg(long)]
    notify_url: Option<String>,
    /// The secret notifications are signed with (HMAC-SHA256); also read from PAYGATE_BANK_NOTIFY_SECRET.
    #[arg(long, env = "PAYGATE_BANK_NOTIFY_SECRET", hide_env_values = true, default_value = "")]
    notify_secret: String,
    /// Per mille of deposits whose notification is never sent.
    #[arg(long, default_value_t = 0)]
    notification_lost_per_mille: u16,
    /// Per mille of deposits notified three times.
    #[arg(long, default_value_t = 0)]
    notification_duplicate_per_mille: u16,
    /// Per mille of deposits notified only after --notification-delay-ms.
    #[arg(long, default_value_t = 0)]
    notification_delayed_per_mille: u16,
    #[arg(long, default_value_t = 5_000)]
    notification_delay_ms: u32,
    /// Per mille of deposits with a reference that are made for one unit less than asked.
    #[arg(long, default_value_t = 0)]
    wrong_amount_per_mille: u16,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
enum BankSimCommand {
    /// Deposit money into an account at a running bank simulator, as a buyer at an ATM would.
    Deposit {
        /// The virtual account's number.
        #[arg(long)]
        account: String,
        /// In the currency's minor units (won).
        #[arg(long)]
        amount: i64,
        #[arg(long, default_value = "KRW")]
        currency: String,
        #[arg(long, default_value = "홍길동")]
        depositor: String,
        /// The simulator's address.
        #[arg(long, default_value = "http://127.0.0.1:9200")]
        url: String,
    },
}

#[derive(Subcommand, Debug)]
enum VaultCommand {
    /// Rotate the data key: a new version seals from now on, every data key is re-wrapped under the newest master
    /// key, every sealed card and secret is re-encrypted in batches, then the old data keys are retired. Safe while
    /// gateways run; run it again to finish one that was interrupted.
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Keep the active data key: only finish re-encrypting and retiring (after an interrupted rotation).
        #[arg(long)]
        resume: bool,
        #[arg(long)]
        json: bool,
    },
    /// The data keys, their state, and how many sealed blobs each holds.
    Status {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Check that every journal balances, the ledger sums to zero, and each payment's receivable matches its
    /// approved amount minus completed cancels. Exits 1 if anything is off.
    Check {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct SimArgs {
    /// Address to listen on; port 0 picks a free port (printed).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: std::net::SocketAddr,
    /// Latency added to every call, plus up to --jitter-ms more.
    #[arg(long, default_value_t = 0)]
    latency_ms: u32,
    #[arg(long, default_value_t = 0)]
    jitter_ms: u32,
    /// Per mille of calls that time out without being applied.
    #[arg(long, default_value_t = 0)]
    timeout_per_mille: u16,
    /// Per mille of calls that are applied but whose answer is lost.
    #[arg(long, default_value_t = 0)]
    lost_answer_per_mille: u16,
    /// Per mille of calls answered with a system error (not applied).
    #[arg(long, default_value_t = 0)]
    system_error_per_mille: u16,
    /// How long a timed-out call is held before its connection closes; must exceed the gateway's timeout.
    #[arg(long, default_value_t = 30_000)]
    hang_ms: u32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Journal entries kept per acquirer, all of them (the benchmarks reconcile against the whole journal); once
    /// full, new work is refused with a system error. About 1 KiB each with its per-reference decision.
    #[arg(long, default_value_t = paygate_connectors::sandbox::SIMULATOR_JOURNAL_CAPACITY)]
    journal_capacity: usize,
}

#[derive(Subcommand, Debug)]
enum MerchantCommand {
    /// Create a merchant with test and live keys; prints the keys once.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        name: String,
        /// Print `{"mId", "testSecretKey", "testClientKey", "liveSecretKey", "liveClientKey"}`.
        #[arg(long)]
        json: bool,
    },
    /// List merchants in creation order.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Start after this MID.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Set a merchant's business profile (사업자 정보): what its cash receipts are issued under and its receipts print.
    Business {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        merchant: String,
        /// 사업자등록번호: 10 digits (hyphens allowed) with a valid check digit.
        #[arg(long)]
        number: String,
        /// 대표자명.
        #[arg(long)]
        representative: String,
        /// 사업장 주소.
        #[arg(long)]
        address: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Test,
    Live,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KindArg {
    Secret,
    Client,
}

/// Which key: by ID, or the active key of a merchant's mode and kind.
#[derive(Args, Debug)]
struct KeySelector {
    #[arg(long, conflicts_with_all = ["merchant", "mode", "kind"])]
    key_id: Option<String>,
    #[arg(long, requires_all = ["mode", "kind"])]
    merchant: Option<String>,
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// List a merchant's keys (prefixes and states; never the keys).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        json: bool,
    },
    /// Issue a replacement key; the old one stops working after --grace-secs (default: at once).
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        selector: KeySelector,
        #[arg(long, default_value_t = 0)]
        grace_secs: u64,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        selector: KeySelector,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { database, listen, init } => {
            apply_database_args(&mut config, &database);
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            config.validate()?;
            crate::logging::init(&config.log)?;
            let open_mode = if init || may_create_implicitly(&config, &database) {
                OpenMode::CreateIfMissing
            } else {
                OpenMode::ExistingOnly
            };
            crate::serve::run(config, open_mode).await
        }
        Command::Migrate { database } => {
            apply_database_args(&mut config, &database);
            let (store, report) = open_store(&config, OpenMode::CreateIfMissing).await?;
            if report.was_empty {
                // A new database gets its secrets now, so later commands can issue and check keys.
                crate::secrets::load(&config, true)?;
            }
            println!(
                "{}: applied migrations {:?} ({})",
                database_url(&config)?,
                report.applied,
                if report.applied.is_empty() {
                    "already up to date"
                } else {
                    "done"
                }
            );
            store.close().await;
            Ok(())
        }
        Command::Merchant { command } => merchant(config, command).await,
        Command::Vault { command } => vault(config, command).await,
        Command::Ledger {
            command: LedgerCommand::Check { database, json },
        } => {
            apply_database_args(&mut config, &database);
            let (store, _) = open_store(&config, OpenMode::ExistingOnly).await?;
            let audit = store.audit_ledger().await;
            store.close().await;
            let audit = audit?;
            let totals: Vec<String> = audit.totals.iter().map(ToString::to_string).collect();
            if json {
                println!(
                    "{}",
                    json!({
                        "clean": audit.is_clean(),
                        "journals": audit.journals,
                        "postings": audit.postings,
                        "unbalancedJournals": audit.unbalanced_journals,
                        "mismatchedPayments": audit.mismatched_payments.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "mismatchedDeposits": audit.mismatched_deposits.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "totals": totals,
                    })
                );
            } else {
                println!(
                    "ledger: {} journals, {} postings, totals [{}], {} unbalanced journals, {} mismatched payments, \
                     {} mismatched deposits",
                    audit.journals,
                    audit.postings,
                    totals.join(", "),
                    audit.unbalanced_journals.len(),
                    audit.mismatched_payments.len(),
                    audit.mismatched_deposits.len()
                );
                for journal in &audit.unbalanced_journals {
                    println!("  unbalanced journal {journal}");
                }
                for payment in &audit.mismatched_payments {
                    println!("  mismatched payment {payment}");
                }
                for deposit in &audit.mismatched_deposits {
                    println!("  mismatched deposit {deposit}");
                }
            }
            if audit.is_clean() {
                println!("ledger check: OK");
                Ok(())
            } else {
                bail!("ledger check failed")
            }
        }
        Command::AcquirerSim(args) => acquirer_sim(args).await,
        Command::BankSim { command: None, args } => bank_sim(args).await,
        Command::BankSim {
            command:
                Some(BankSimCommand::Deposit {
                    account,
                    amount,
                    currency,
                    depositor,
                    url,
                }),
            ..
        } => bank_deposit(&url, &account, amount, &currency, &depositor).await,
        Command::Key { command } => key(config, command).await,
        Command::Openapi => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &paygate_api::openapi::document())?;
            out.write_all(b"\n")?;
            Ok(())
        }
    }
}

fn apply_database_args(config: &mut Config, args: &DatabaseArgs) {
    if let Some(dir) = &args.data_dir {
        config.database.data_dir = dir.clone();
    }
    if let Some(url) = &args.database_url {
        config.database.url = Some(url.clone());
    }
}

/// `serve` creates a database by itself only in the default data directory, or in a data directory that already
/// exists. A misspelt `--data-dir` or `sqlite://` path is refused instead of becoming a new empty database.
fn may_create_implicitly(config: &Config, args: &DatabaseArgs) -> bool {
    if config.database.url.is_some() {
        return false;
    }
    let default_dir = args.data_dir.is_none() && config.database.data_dir == std::path::Path::new(DEFAULT_DATA_DIR);
    default_dir || config.database.data_dir.is_dir()
}

pub fn database_url(config: &Config) -> anyhow::Result<DatabaseUrl> {
    match &config.database.url {
        Some(url) => DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("database URL: {e}")),
        None => Ok(DatabaseUrl::sqlite_file(config.database.data_dir.join("paygate.db"))),
    }
}

/// Opens (and migrates) the store.
pub async fn open_store(config: &Config, open_mode: OpenMode) -> anyhow::Result<(Arc<dyn Store>, MigrationReport)> {
    let url = database_url(config)?;
    paygate_store::open(&url, &config.store_options(open_mode))
        .await
        .with_context(|| format!("cannot open the database at {url}"))
}

/// Opens the store and the app. The secrets file is created only together with a brand-new database: an existing
/// database's keys were hashed under its own pepper, and a new pepper would silently invalidate all of them.
pub async fn open(config: &Config, open_mode: OpenMode) -> anyhow::Result<(Arc<dyn Store>, MigrationReport, App)> {
    let (store, report) = open_store(config, open_mode).await?;
    let secrets = match crate::secrets::load(config, report.was_empty) {
        Ok(secrets) => secrets,
        Err(error) => {
            store.close().await;
            return Err(error);
        }
    };
    let mut options = app_options(config)?;
    match config.banks.sandbox.as_str() {
        "in-process" => {
            let secret = match config.secrets.bank_notify_secret.as_deref().filter(|s| !s.is_empty()) {
                Some(configured) => configured.as_bytes().to_vec(),
                None => paygate_app::bank::Banks::sandbox_notify_secret(&secrets),
            };
            options.banks =
                paygate_app::bank::Banks::in_process_sandbox(paygate_app::Clock::now(&SystemClock), &secret).0;
        }
        "off" => {}
        url if url.starts_with("http://") => {
            // A bank in its own process (`paygate bank-sim`): its notifications are signed with the same secret,
            // given to it with `--notify-secret`.
            let secret = match config.secrets.bank_notify_secret.as_deref().filter(|s| !s.is_empty()) {
                Some(configured) => configured.as_bytes().to_vec(),
                None => paygate_app::bank::Banks::sandbox_notify_secret(&secrets),
            };
            let http = paygate_connectors::http::HttpAcquirerConfig {
                connect_timeout_ms: config.acquirers.connect_timeout_ms,
                request_timeout_ms: config.acquirers.request_timeout_ms,
                pool_max_idle: usize::try_from(config.acquirers.pool_idle_max).unwrap_or(usize::MAX),
            };
            let bank = paygate_connectors::http::HttpBank::new(
                url,
                paygate_domain::bank::Bank::virtual_account_issuers().collect(),
                http,
            )
            .context("banks.sandbox")?;
            let mut banks = paygate_app::bank::Banks::new();
            banks.set(paygate_domain::api_key::Mode::Test, Arc::new(bank), &secret);
            options.banks = banks;
        }
        other => anyhow::bail!("banks.sandbox must be `in-process`, an http:// URL or `off`, not {other:?}"),
    }
    let app = App::with_options(store.clone(), &secrets, Arc::new(SystemClock), options)?;
    // Every process that seals or opens data loads the vault's data keys (recording the first ones if needed).
    if let Err(error) = app.vault_bootstrap().await {
        store.close().await;
        return Err(anyhow::anyhow!("vault: {error}"));
    }
    Ok((store, report, app))
}

/// The acquirers and payment settings the configuration asks for.
pub fn app_options(config: &Config) -> anyhow::Result<paygate_app::AppOptions> {
    use paygate_app::payments::Acquirers;
    use paygate_connectors::http::{HttpAcquirer, HttpAcquirerConfig};
    let acquirers = match config.acquirers.sandbox.as_str() {
        "in-process" => Acquirers::in_process_sandbox().0,
        url => {
            let http = HttpAcquirerConfig {
                connect_timeout_ms: config.acquirers.connect_timeout_ms,
                request_timeout_ms: config.acquirers.request_timeout_ms,
                pool_max_idle: usize::try_from(config.acquirers.pool_idle_max).unwrap_or(usize::MAX),
            };
            let mut acquirers = Acquirers::new();
            for name in ["A", "B", "C"] {
                let id = paygate_connectors::AcquirerId::parse(name).context("acquirer id")?;
                let acquirer = HttpAcquirer::new(id, url, http).context("acquirers.sandbox")?;
                acquirers.add(paygate_domain::api_key::Mode::Test, Arc::new(acquirer));
            }
            acquirers
        }
    };
    let mut payments = config.payments.clone();
    if payments.checkout_base_url.is_empty() {
        payments.checkout_base_url = format!("http://{}", config.server.listen);
    }
    Ok(paygate_app::AppOptions {
        acquirers,
        // The bank needs the secrets (its notifications' key); `open` sets it.
        banks: paygate_app::bank::Banks::new(),
        // Test-mode cash receipts go to the in-process sandbox tax authority; live mode has none yet.
        tax_authorities: paygate_app::cash_receipts::TaxAuthorities::in_process_sandbox().0,
        payments,
        outbox: config.outbox.clone(),
        idempotency: paygate_app::idempotency::IdempotencyOptions {
            in_flight_lock_ms: config.idempotency.in_flight_lock_ms,
        },
        vault: config.vault.clone(),
    })
}

async fn vault(mut config: Config, command: VaultCommand) -> anyhow::Result<()> {
    match command {
        VaultCommand::Rotate { database, resume, json } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let report = app
                .vault_rotate(resume, |line| {
                    if !json {
                        println!("{line}");
                    }
                })
                .await;
            store.close().await;
            let report = report.map_err(|e| anyhow::anyhow!("vault rotate: {e}"))?;
            if json {
                println!(
                    "{}",
                    json!({
                        "active": report.active,
                        "started": report.started,
                        "resealed": report.resealed,
                        "batches": report.batches,
                        "retired": report.retired,
                        "rewrapped": report.rewrapped,
                    })
                );
            } else {
                println!(
                    "vault rotate: data key v{} active; {} blobs re-encrypted in {} batches; retired {:?}",
                    report.active, report.resealed, report.batches, report.retired
                );
            }
            Ok(())
        }
        VaultCommand::Status { database, json } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let status = app.vault_status().await;
            store.close().await;
            let status = status.map_err(|e| anyhow::anyhow!("vault status: {e}"))?;
            let keys: Vec<_> = status
                .keys
                .iter()
                .map(|k| {
                    json!({
                        "version": k.version,
                        "masterVersion": k.master_version,
                        "state": k.state.as_str(),
                        "sealed": status.counts.iter().filter(|c| c.key_version == k.version).map(|c| c.rows).sum::<u64>(),
                    })
                })
                .collect();
            let counts: Vec<_> = status
                .counts
                .iter()
                .map(|c| json!({"place": c.kind.as_str(), "version": c.key_version, "rows": c.rows}))
                .collect();
            if json {
                println!("{}", json!({"keys": keys, "sealed": counts}));
            } else {
                for key in &keys {
                    println!(
                        "data key v{}: {} (wrapped under master v{}), {} sealed blobs",
                        key["version"],
                        key["state"].as_str().unwrap_or_default(),
                        key["masterVersion"],
                        key["sealed"]
                    );
                }
                for count in &status.counts {
                    println!("  {}: {} under v{}", count.kind.as_str(), count.rows, count.key_version);
                }
            }
            Ok(())
        }
    }
}

async fn merchant(mut config: Config, command: MerchantCommand) -> anyhow::Result<()> {
    match command {
        MerchantCommand::Create { database, name, json } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let created = app.create_merchant(&name).await?;
            let secret = |mode, kind| {
                created
                    .key(mode, kind)
                    .map(|k| k.secret.expose_secret().to_owned())
                    .unwrap_or_default()
            };
            if json {
                println!(
                    "{}",
                    json!({
                        "mId": created.merchant.id.to_string(),
                        "testSecretKey": secret(Mode::Test, KeyKind::Secret),
                        "testClientKey": secret(Mode::Test, KeyKind::Client),
                        "liveSecretKey": secret(Mode::Live, KeyKind::Secret),
                        "liveClientKey": secret(Mode::Live, KeyKind::Client),
                    })
                );
            } else {
                println!(
                    "created merchant {} ({})",
                    created.merchant.id,
                    created.merchant.name.as_str()
                );
                println!("keys (shown once; store them now):");
                for (label, mode, kind) in [
                    ("test secret", Mode::Test, KeyKind::Secret),
                    ("test client", Mode::Test, KeyKind::Client),
                    ("live secret", Mode::Live, KeyKind::Secret),
                    ("live client", Mode::Live, KeyKind::Client),
                ] {
                    println!("  {label}: {}", secret(mode, kind));
                }
            }
            store.close().await;
            Ok(())
        }
        MerchantCommand::Business {
            database,
            merchant,
            number,
            representative,
            address,
        } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let merchant = MerchantId::parse(&merchant).context("--merchant")?;
            let profile = paygate_domain::merchant::BusinessProfile::parse(
                merchant,
                &number,
                &representative,
                &address,
                paygate_app::Clock::now(&SystemClock),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let result = app.set_business_profile(&profile).await;
            store.close().await;
            result.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "business profile of {merchant} set: {} ({}, {})",
                profile.business_number_display(),
                profile.representative,
                profile.address
            );
            Ok(())
        }
        MerchantCommand::List {
            database,
            after,
            limit,
            json,
        } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let after = after.map(|a| MerchantId::parse(&a)).transpose().context("--after")?;
            let merchants = app.list_merchants(after, limit).await?;
            if json {
                let rows: Vec<_> = merchants
                    .iter()
                    .map(|m| json!({"mId": m.id.to_string(), "name": m.name.as_str(), "status": m.status.as_str(), "createdAtMs": m.created_at.as_millis()}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for m in &merchants {
                    println!("{}  {:<10}  {}", m.id, m.status.as_str(), m.name.as_str());
                }
            }
            store.close().await;
            Ok(())
        }
    }
}

async fn key(mut config: Config, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::List {
            database,
            merchant,
            json,
        } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let merchant = MerchantId::parse(&merchant).context("--merchant")?;
            app.merchant(merchant).await.context("no such merchant")?;
            let keys = app.list_keys(merchant).await?;
            let now = paygate_app::Clock::now(&SystemClock);
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"keyId": k.id.to_string(), "prefix": k.display_prefix, "mode": k.mode.as_str(), "kind": k.kind.as_str(), "revoked": k.state_at(now) == paygate_domain::api_key::KeyState::Revoked, "revokedAtMs": k.revoked_at.map(|t| t.as_millis())}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for k in &keys {
                    let state = match (k.state_at(now), k.revoked_at) {
                        (paygate_domain::api_key::KeyState::Revoked, _) => "revoked",
                        (_, Some(_)) => "expiring",
                        _ => "active",
                    };
                    println!("{}  {}…  {:<8}", k.id, k.display_prefix, state);
                }
            }
            store.close().await;
            Ok(())
        }
        KeyCommand::Rotate {
            database,
            selector,
            grace_secs,
            json,
        } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let old = select_key(&app, &selector).await?;
            let issued = app.rotate_key(old, grace_secs).await?;
            if json {
                println!(
                    "{}",
                    json!({"oldKeyId": old.to_string(), "keyId": issued.record.id.to_string(), "key": issued.secret.expose_secret(), "graceSecs": grace_secs})
                );
            } else {
                println!(
                    "new key {} (shown once): {}",
                    issued.record.id,
                    issued.secret.expose_secret()
                );
                println!("old key {old} stops working in {grace_secs} s");
            }
            store.close().await;
            Ok(())
        }
        KeyCommand::Revoke { database, selector } => {
            apply_database_args(&mut config, &database);
            let (store, _, app) = open(&config, OpenMode::ExistingOnly).await?;
            let id = select_key(&app, &selector).await?;
            let key = app.revoke_key(id).await?;
            println!("revoked {} ({}…)", key.id, key.display_prefix);
            store.close().await;
            Ok(())
        }
    }
}

async fn select_key(app: &App, selector: &KeySelector) -> anyhow::Result<ApiKeyId> {
    if let Some(id) = &selector.key_id {
        return ApiKeyId::parse(id).context("--key-id");
    }
    let (Some(merchant), Some(mode), Some(kind)) = (&selector.merchant, selector.mode, selector.kind) else {
        bail!("name the key with --key-id, or with --merchant, --mode and --kind");
    };
    let merchant = MerchantId::parse(merchant).context("--merchant")?;
    let mode = match mode {
        ModeArg::Test => Mode::Test,
        ModeArg::Live => Mode::Live,
    };
    let kind = match kind {
        KindArg::Secret => KeyKind::Secret,
        KindArg::Client => KeyKind::Client,
    };
    let keys = app.list_keys(merchant).await?;
    let active: Vec<_> = keys
        .iter()
        .filter(|k| k.mode == mode && k.kind == kind && k.revoked_at.is_none())
        .collect();
    match active.as_slice() {
        [key] => Ok(key.id),
        [] => bail!(
            "merchant {merchant} has no active {} {} key",
            mode.as_str(),
            kind.as_str()
        ),
        _ => bail!("merchant {merchant} has several active keys of that kind; use --key-id"),
    }
}

async fn bank_sim(args: BankSimArgs) -> anyhow::Result<()> {
    use paygate_connectors::bank_notify::NotificationFaults;
    use paygate_connectors::http::{BankSimConfig, BankSimulator};
    if args.notify_url.is_some() && args.notify_secret.is_empty() {
        bail!("--notify-url needs --notify-secret (or PAYGATE_BANK_NOTIFY_SECRET): notifications are signed");
    }
    let config = BankSimConfig {
        notify_url: args.notify_url,
        notify_secret: args.notify_secret.into_bytes(),
        faults: NotificationFaults {
            lost_per_mille: args.notification_lost_per_mille,
            duplicate_per_mille: args.notification_duplicate_per_mille,
            delayed_per_mille: args.notification_delayed_per_mille,
            delay_ms: args.notification_delay_ms,
            wrong_amount_per_mille: args.wrong_amount_per_mille,
            seed: args.seed,
        },
        ..BankSimConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("paygate bank-sim listening on http://{address}");
    BankSimulator::new(config).serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn bank_deposit(url: &str, account: &str, amount: i64, currency: &str, depositor: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "accountNumber": account, "amount": amount, "currency": currency, "depositorName": depositor,
    });
    let response = reqwest::Client::new()
        .post(format!("{}/bank/deposits", url.trim_end_matches('/')))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the bank simulator at {url}"))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .context("the bank simulator's answer is not JSON")?;
    match answer["result"].as_str() {
        Some("ACCEPTED") => {
            println!(
                "deposited {amount} {currency} into {account}: {} (seq {})",
                answer["depositId"].as_str().unwrap_or("?"),
                answer["seq"]
            );
            Ok(())
        }
        Some("REFUSED") => bail!(
            "the bank refused the deposit: {}",
            answer["code"].as_str().unwrap_or("?")
        ),
        _ => bail!("the bank simulator answered {status}: {answer}"),
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn acquirer_sim(args: SimArgs) -> anyhow::Result<()> {
    use paygate_connectors::http::{Simulator, SimulatorConfig};
    let config = SimulatorConfig {
        latency_ms: args.latency_ms,
        latency_jitter_ms: args.jitter_ms,
        timeout_per_mille: args.timeout_per_mille,
        lost_answer_per_mille: args.lost_answer_per_mille,
        system_error_per_mille: args.system_error_per_mille,
        seed: args.seed,
        hang_ms: args.hang_ms,
        journal_capacity: args.journal_capacity,
        ..SimulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("paygate acquirer-sim listening on http://{address} (acquirers A, B, C)");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return shutdown.await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = shutdown => {}
        }
    };
    Simulator::new(config).serve(listener, shutdown).await?;
    Ok(())
}
