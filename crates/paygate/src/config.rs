//! One configuration: defaults, then a TOML file, then `PAYGATE_<SECTION>__<KEY>` environment variables, then
//! command-line flags. Every key and its default is listed in `docs/configuration.md`; a test checks that list
//! against this file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use paygate_api::config::{HttpConfig, IdempotencyConfig, RateLimitConfig};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub idempotency: IdempotencyConfig,
    pub rate_limit: RateLimitConfig,
    pub log: LogConfig,
    pub secrets: SecretsConfig,
    pub payments: paygate_app::payments::PaymentConfig,
    pub acquirers: AcquirersConfig,
    pub banks: BanksConfig,
    pub outbox: paygate_app::outbox::OutboxConfig,
    pub vault: paygate_app::vault::VaultConfig,
}

/// Where test-mode payments go: the in-process sandbox acquirers, or the simulator process over HTTP.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AcquirersConfig {
    /// `in-process`, or the base URL of `paygate acquirer-sim` (e.g. `http://127.0.0.1:9100`).
    pub sandbox: String,
    /// HTTP connector bounds (simulator).
    pub connect_timeout_ms: u32,
    pub request_timeout_ms: u32,
    pub pool_idle_max: u32,
}

impl Default for AcquirersConfig {
    fn default() -> Self {
        AcquirersConfig {
            sandbox: "in-process".into(),
            connect_timeout_ms: 1_000,
            request_timeout_ms: 10_000,
            pool_idle_max: 64,
        }
    }
}

/// Where test-mode bank methods (virtual accounts) go.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BanksConfig {
    /// `in-process` (a sandbox bank inside the gateway, its routes under `/bank/`), the `http://` URL of a
    /// `paygate bank-sim` process (test mode), or `off`.
    pub sandbox: String,
    /// Faults of the in-process sandbox bank's deposit notifications (fault testing), per mille of deposits.
    pub notification_lost_per_mille: u16,
    pub notification_duplicate_per_mille: u16,
    pub notification_delayed_per_mille: u16,
    pub notification_delay_ms: u32,
    /// Seeds the faults' draws: a seed replays the same faults.
    pub fault_seed: u64,
}

impl Default for BanksConfig {
    fn default() -> Self {
        BanksConfig {
            sandbox: "in-process".into(),
            notification_lost_per_mille: 0,
            notification_duplicate_per_mille: 0,
            notification_delayed_per_mille: 0,
            notification_delay_ms: 5_000,
            fault_seed: 1,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; when empty, SQLite at `<data_dir>/paygate.db`.
    pub url: Option<String>,
    pub data_dir: PathBuf,
    pub migrate_on_start: bool,
    pub sqlite_reader_threads: u16,
    pub sqlite_inline_readers: u16,
    pub sqlite_write_queue_max: u32,
    pub sqlite_write_batch_max: u32,
    pub sqlite_busy_timeout_ms: u32,
    pub sqlite_checkpoint_interval_ms: u32,
    pub sqlite_cache_mib: u32,
    pub sqlite_mmap_mib: u32,
    pub postgres_pool_max: u32,
    pub postgres_connect_timeout_ms: u32,
    pub postgres_statement_timeout_ms: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let store = paygate_store::StoreOptions::default();
        DatabaseConfig {
            url: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            migrate_on_start: true,
            sqlite_reader_threads: store.sqlite_reader_threads,
            sqlite_inline_readers: store.sqlite_inline_readers,
            sqlite_write_queue_max: store.sqlite_write_queue_max,
            sqlite_write_batch_max: store.sqlite_write_batch_max,
            sqlite_busy_timeout_ms: store.sqlite_busy_timeout_ms,
            sqlite_checkpoint_interval_ms: store.sqlite_checkpoint_interval_ms,
            sqlite_cache_mib: store.sqlite_cache_mib,
            sqlite_mmap_mib: store.sqlite_mmap_mib,
            postgres_pool_max: store.postgres_pool_max,
            postgres_connect_timeout_ms: store.postgres_connect_timeout_ms,
            postgres_statement_timeout_ms: store.postgres_statement_timeout_ms,
        }
    }
}

pub const DEFAULT_DATA_DIR: &str = "./data";

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `paygate=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Hex, at least 64 characters (32 bytes). When empty, read from (or created in) `<data_dir>/secrets.toml`.
    pub api_key_pepper: Option<String>,
    /// Comma-separated `VERSION:HEX` keys (32 bytes each) that seal data at rest. Required with `api_key_pepper`.
    pub vault_keys: Option<String>,
    /// The secret the test-mode bank signs its deposit notifications with (as `paygate bank-sim --notify-secret`
    /// takes it). When empty, the in-process sandbox bank uses one derived from the API key pepper.
    pub bank_notify_secret: Option<String>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsConfig([REDACTED])")
    }
}

impl Config {
    /// Loads defaults, then the file (if given), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only nested keys are configuration; other PAYGATE_* variables (PAYGATE_DATABASE_URL, used by the CLI,
        // or test settings) are not this file's business.
        figment = figment.merge(
            Env::prefixed("PAYGATE_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        figment.extract().context("invalid configuration")
    }

    pub fn api(&self) -> paygate_api::ApiConfig {
        paygate_api::ApiConfig {
            http: self.http.clone(),
            idempotency: self.idempotency.clone(),
            rate_limit: self.rate_limit.clone(),
        }
    }

    pub fn store_options(&self, open_mode: paygate_store::OpenMode) -> paygate_store::StoreOptions {
        let db = &self.database;
        paygate_store::StoreOptions {
            open_mode,
            sqlite_reader_threads: db.sqlite_reader_threads,
            sqlite_inline_readers: db.sqlite_inline_readers,
            sqlite_write_queue_max: db.sqlite_write_queue_max,
            sqlite_write_batch_max: db.sqlite_write_batch_max,
            sqlite_busy_timeout_ms: db.sqlite_busy_timeout_ms,
            sqlite_checkpoint_interval_ms: db.sqlite_checkpoint_interval_ms,
            sqlite_cache_mib: db.sqlite_cache_mib,
            sqlite_mmap_mib: db.sqlite_mmap_mib,
            postgres_pool_max: db.postgres_pool_max,
            postgres_connect_timeout_ms: db.postgres_connect_timeout_ms,
            postgres_statement_timeout_ms: db.postgres_statement_timeout_ms,
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let api = self.api();
        if api.idempotency.in_flight_lock_ms <= api.http.request_timeout_ms {
            anyhow::bail!(
                "idempotency.in_flight_lock_ms ({}) must exceed http.request_timeout_ms ({}), or a slow request's key could be taken over while it still runs",
                api.idempotency.in_flight_lock_ms,
                api.http.request_timeout_ms
            );
        }
        if u64::from(self.payments.first_inquiry_delay_ms) <= u64::from(self.acquirers.request_timeout_ms) {
            anyhow::bail!(
                "payments.first_inquiry_delay_ms ({}) must exceed acquirers.request_timeout_ms ({}), or the inquiry worker could race a call still in flight",
                self.payments.first_inquiry_delay_ms,
                self.acquirers.request_timeout_ms
            );
        }
        if u64::from(self.outbox.lease_ms) <= u64::from(self.outbox.request_timeout_ms) {
            anyhow::bail!(
                "outbox.lease_ms ({}) must exceed outbox.request_timeout_ms ({}), or a slow delivery could be sent twice",
                self.outbox.lease_ms,
                self.outbox.request_timeout_ms
            );
        }
        if self.outbox.notification_attempts_max == 0 {
            anyhow::bail!("outbox.notification_attempts_max must be at least 1");
        }
        if api.idempotency.retention_hours < 24 {
            anyhow::bail!("idempotency.retention_hours must be at least 24");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every key of the config, as `section.key`.
    fn existing_keys() -> BTreeSet<String> {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut keys = BTreeSet::new();
        for (section, fields) in value.as_object().unwrap() {
            for key in fields.as_object().unwrap().keys() {
                keys.insert(format!("{section}.{key}"));
            }
        }
        keys
    }

    /// Keys documented in docs/configuration.md: table rows under `## `[section]`` headings.
    fn documented_keys() -> BTreeSet<String> {
        let text = include_str!("../../../docs/configuration.md");
        let mut section = None;
        let mut keys = BTreeSet::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("## `[").and_then(|rest| rest.strip_suffix("]`")) {
                section = Some(name.to_owned());
            } else if let (Some(section), Some(rest)) = (&section, line.strip_prefix("| `")) {
                if let Some((key, _)) = rest.split_once('`') {
                    keys.insert(format!("{section}.{key}"));
                }
            }
        }
        keys
    }

    #[test]
    fn config_doc_lists_every_key_and_only_real_keys() {
        let existing = existing_keys();
        let documented = documented_keys();
        let undocumented: Vec<_> = existing.difference(&documented).collect();
        let phantom: Vec<_> = documented.difference(&existing).collect();
        assert!(
            undocumented.is_empty(),
            "keys missing from docs/configuration.md: {undocumented:?}"
        );
        assert!(
            phantom.is_empty(),
            "docs/configuration.md lists keys that do not exist: {phantom:?}"
        );
        assert!(existing.len() > 20);
    }

    #[test]
    fn documented_defaults_match() {
        let text = include_str!("../../../docs/configuration.md");
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut section = String::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("## `[").and_then(|rest| rest.strip_suffix("]`")) {
                section = name.to_owned();
                continue;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (Some(key), Some(default)) = (cells.get(1), cells.get(2)) else {
                continue;
            };
            let (Some(key), Some(default)) = (
                key.strip_prefix('`').and_then(|k| k.strip_suffix('`')),
                default.strip_prefix('`').and_then(|d| d.strip_suffix('`')),
            ) else {
                continue;
            };
            let actual = &value[&section][key];
            let actual = match actual {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(actual, default, "{section}.{key}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paygate.toml");
        std::fs::write(&path, "[http]\nrequest_timeout_msec = 5\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "[http]\nrequest_timeout_ms = 5\n").unwrap();
        assert_eq!(Config::load(Some(&path)).unwrap().http.request_timeout_ms, 5);
    }

    #[test]
    fn lock_must_outlive_the_request_timeout() {
        let mut config = Config::default();
        assert!(config.validate().is_ok());
        config.idempotency.in_flight_lock_ms = config.http.request_timeout_ms;
        assert!(config.validate().is_err());
    }

    #[test]
    fn debug_hides_the_pepper() {
        let secrets = SecretsConfig {
            api_key_pepper: Some("ab".repeat(32)),
            vault_keys: Some(format!("1:{}", "cd".repeat(32))),
            bank_notify_secret: Some("efefefef".into()),
        };
        assert!(!format!("{secrets:?}").contains("abab"));
        assert!(!format!("{secrets:?}").contains("efef"));
        assert!(!format!("{secrets:?}").contains("cdcd"));
    }
}
