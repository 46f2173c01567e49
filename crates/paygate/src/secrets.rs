//! Server secrets: from configuration, or from `<data_dir>/secrets.toml`, created with mode 0600 on first start.
//!
//! The API key pepper turns stored key hashes into keyed hashes: a stolen database alone cannot be used to test
//! guesses. It must be the same for every gateway process on one database, and losing it invalidates every key,
//! so production deployments set `PAYGATE_SECRETS__API_KEY_PEPPER` from their secret store.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use paygate_app::vault::VaultKey;
use paygate_app::Secrets;
use serde::{Deserialize, Serialize};

use crate::config::Config;

#[derive(Serialize, Deserialize)]
struct SecretsFile {
    api_key_pepper: String,
    /// `"VERSION:HEX"` entries; the highest version seals new data. Absent in files written before the vault
    /// existed: such a file gains a first key (nothing can have been sealed without one).
    #[serde(default)]
    vault_keys: Vec<String>,
}

pub fn secrets_path(config: &Config) -> PathBuf {
    config.database.data_dir.join("secrets.toml")
}

/// Loads the secrets; creates the file only when `create` is allowed (a brand-new database).
pub fn load(config: &Config, create: bool) -> anyhow::Result<Secrets> {
    if let Some(hex_pepper) = &config.secrets.api_key_pepper {
        let api_key_pepper = parse_pepper(hex_pepper).context("secrets.api_key_pepper")?;
        let Some(vault_keys) = &config.secrets.vault_keys else {
            bail!("secrets.api_key_pepper is set, so secrets.vault_keys must be set too (\"1:<64 hex digits>\")");
        };
        let vault_keys = parse_vault_keys(vault_keys.split(',')).context("secrets.vault_keys")?;
        return Ok(Secrets {
            api_key_pepper,
            vault_keys,
        });
    }
    let path = secrets_path(config);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut file: SecretsFile =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        if file.vault_keys.is_empty() {
            file.vault_keys.push(new_vault_key(1));
            replace(&path, &file)?;
        }
        let api_key_pepper =
            parse_pepper(&file.api_key_pepper).with_context(|| format!("{}: api_key_pepper", path.display()))?;
        let vault_keys = parse_vault_keys(file.vault_keys.iter().map(String::as_str))
            .with_context(|| format!("{}: vault_keys", path.display()))?;
        return Ok(Secrets {
            api_key_pepper,
            vault_keys,
        });
    }
    if !create {
        bail!(
            "no secrets at {} and none configured. This database already exists, so its API keys were hashed with a \
             pepper kept elsewhere: use the --data-dir of the gateway that created it, or set \
             PAYGATE_SECRETS__API_KEY_PEPPER and PAYGATE_SECRETS__VAULT_KEYS",
            path.display()
        );
    }
    let pepper: [u8; 32] = paygate_app::random_bytes();
    let file = SecretsFile {
        api_key_pepper: hex::encode(pepper),
        vault_keys: vec![new_vault_key(1)],
    };
    write(&path, &file, Creation::New)?;
    let vault_keys = parse_vault_keys(file.vault_keys.iter().map(String::as_str))?;
    Ok(Secrets {
        api_key_pepper: pepper.to_vec(),
        vault_keys,
    })
}

fn new_vault_key(version: u32) -> String {
    let key: [u8; 32] = paygate_app::random_bytes();
    format!("{version}:{}", hex::encode(key))
}

fn parse_pepper(text: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = hex::decode(text.trim()).context("must be hex")?;
    if bytes.len() < 32 {
        bail!("must be at least 32 bytes (64 hex characters)");
    }
    Ok(bytes)
}

fn parse_vault_keys<'a>(entries: impl Iterator<Item = &'a str>) -> anyhow::Result<Vec<VaultKey>> {
    let mut keys = Vec::new();
    for entry in entries.map(str::trim).filter(|e| !e.is_empty()) {
        let (version, hex_key) = entry.split_once(':').context("each entry is VERSION:HEX")?;
        let version: u32 = version.parse().context("the version must be a number")?;
        let bytes: [u8; 32] = hex::decode(hex_key)
            .context("the key must be hex")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("the key must be 32 bytes (64 hex characters)"))?;
        keys.push(VaultKey { version, bytes });
    }
    if keys.is_empty() {
        bail!("at least one vault key is required");
    }
    Ok(keys)
}

enum Creation {
    New,
    Replace,
}

fn replace(path: &Path, file: &SecretsFile) -> anyhow::Result<()> {
    write(path, file, Creation::Replace)
}

/// Writes the file with mode 0600. A replacement goes to a temporary file first and is renamed over the old one,
/// so a crash never leaves a half-written secrets file.
fn write(path: &Path, file: &SecretsFile, creation: Creation) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        // Owner-only, like the file: the data directory also holds the database.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = format!(
        "# paygate server secrets. Keep this file private and backed up: losing it invalidates every API key\n\
         # and makes sealed data unreadable.\n{}",
        toml::to_string(file).context("cannot encode secrets")?
    );
    let target = match creation {
        Creation::New => path.to_path_buf(),
        Creation::Replace => path.with_extension("toml.tmp"),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match creation {
        Creation::New => options.create_new(true),
        Creation::Replace => options.create(true).truncate(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = options
        .open(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    handle.write_all(text.as_bytes())?;
    handle.sync_all()?;
    if let Creation::Replace = creation {
        std::fs::rename(&target, path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(())
}
