//! Server secrets: from configuration, or from `<data_dir>/secrets.toml`, created with mode 0600 on first start.
//!
//! The API key pepper turns stored key hashes into keyed hashes: a stolen database alone cannot be used to test
//! guesses. It must be the same for every gateway process on one database, and losing it invalidates every key,
//! so production deployments set `PAYGATE_SECRETS__API_KEY_PEPPER` from their secret store.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use paygate_app::Secrets;
use serde::{Deserialize, Serialize};

use crate::config::Config;

#[derive(Serialize, Deserialize)]
struct SecretsFile {
    api_key_pepper: String,
}

pub fn secrets_path(config: &Config) -> PathBuf {
    config.database.data_dir.join("secrets.toml")
}

/// Loads the secrets; creates the file only when `create` is allowed (a brand-new database).
pub fn load(config: &Config, create: bool) -> anyhow::Result<Secrets> {
    if let Some(hex_pepper) = &config.secrets.api_key_pepper {
        return parse_pepper(hex_pepper).context("secrets.api_key_pepper");
    }
    let path = secrets_path(config);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let file: SecretsFile = toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        return parse_pepper(&file.api_key_pepper).with_context(|| format!("{}: api_key_pepper", path.display()));
    }
    if !create {
        bail!(
            "no secrets at {} and none configured. This database already exists, so its API keys were hashed with a \
             pepper kept elsewhere: use the --data-dir of the gateway that created it, or set \
             PAYGATE_SECRETS__API_KEY_PEPPER",
            path.display()
        );
    }
    let pepper: [u8; 32] = paygate_app::random_bytes();
    write_new(
        &path,
        &SecretsFile {
            api_key_pepper: hex::encode(pepper),
        },
    )?;
    Ok(Secrets {
        api_key_pepper: pepper.to_vec(),
    })
}

fn parse_pepper(text: &str) -> anyhow::Result<Secrets> {
    let bytes = hex::decode(text.trim()).context("must be hex")?;
    if bytes.len() < 32 {
        bail!("must be at least 32 bytes (64 hex characters)");
    }
    Ok(Secrets { api_key_pepper: bytes })
}

fn write_new(path: &Path, file: &SecretsFile) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = format!(
        "# paygate server secrets. Keep this file private and backed up: losing it invalidates every API key.\n{}",
        toml::to_string(file).context("cannot encode secrets")?
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    handle.write_all(text.as_bytes())?;
    handle.sync_all()?;
    Ok(())
}
