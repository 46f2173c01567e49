//! The processes a run needs: the gateway (`paygate serve`), the acquirer simulator (`paygate acquirer-sim`), a
//! fresh database for each, and what `/proc` says about them (CPU time, peak RSS).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Which database the gateway runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to reach the tools and the database server.
#[derive(Clone, Debug, clap::Args)]
pub struct Setup {
    /// The `paygate` binary; by default the one next to this program (build both with the same profile).
    #[arg(long, global = true)]
    pub paygate: Option<PathBuf>,
    /// Database backend for the gateway.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite, global = true)]
    pub backend: Backend,
    /// A PostgreSQL URL with the right to create databases; each run creates its own and drops it afterwards.
    #[arg(
        long,
        env = "PAYGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    pub postgres_url: String,
    /// Extra gateway settings, `KEY=VALUE` (e.g. `PAYGATE_DATABASE__POSTGRES_POOL_MAX=32`); repeatable.
    #[arg(long = "gateway-env", value_parser = parse_key_value, global = true)]
    pub gateway_env: Vec<(String, String)>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}`: expected KEY=VALUE"))
}

impl Setup {
    pub fn paygate_binary(&self) -> Result<PathBuf> {
        if let Some(path) = &self.paygate {
            return Ok(path.clone());
        }
        let me = std::env::current_exe().context("cannot locate this program")?;
        let sibling = me.with_file_name("paygate");
        if sibling.exists() {
            Ok(sibling)
        } else {
            bail!(
                "no `paygate` next to {}; build it (cargo build --release -p paygate) or pass --paygate",
                me.display()
            )
        }
    }
}

/// A database of one run: a SQLite data directory or a PostgreSQL database made for the run.
pub struct Database {
    pub backend: Backend,
    pub data_dir: PathBuf,
    postgres: Option<(String, String)>,
    _tmp: tempfile::TempDir,
}

impl Database {
    pub async fn create(setup: &Setup) -> Result<Database> {
        let tmp = tempfile::Builder::new().prefix("paygate-bench-").tempdir()?;
        let data_dir = tmp.path().join("data");
        let postgres = match setup.backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let name = format!("paygate_bench_{}", random_hex(6));
                let client = pg_connect(&setup.postgres_url).await?;
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| format!("cannot create database {name}"))?;
                Some((setup.postgres_url.clone(), name))
            }
        };
        Ok(Database {
            backend: setup.backend,
            data_dir,
            postgres,
            _tmp: tmp,
        })
    }

    /// `--database-url …` for PostgreSQL; nothing for SQLite (the data directory holds it).
    pub fn args(&self) -> Vec<String> {
        match &self.postgres {
            Some((admin, name)) => vec!["--database-url".into(), database_url(admin, name)],
            None => vec![],
        }
    }

    pub fn postgres_url(&self) -> Option<String> {
        self.postgres.as_ref().map(|(admin, name)| database_url(admin, name))
    }

    /// Drops the PostgreSQL database (the SQLite directory goes with the temporary directory).
    pub async fn drop_database(&self) {
        if let Some((admin, name)) = &self.postgres {
            if let Ok(client) = pg_connect(admin).await {
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

fn database_url(admin: &str, name: &str) -> String {
    let start = admin.find("://").map(|i| i + 3).unwrap_or(0);
    match admin[start..].find('/') {
        Some(slash) => {
            let (base, rest) = admin.split_at(start + slash);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{name}{query}")
        }
        None => format!("{admin}/{name}"),
    }
}

pub async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// A port nobody listens on now (the gateway is restarted on the same one after a kill).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The demo merchant's keys, printed by a gateway that created a new database.
#[derive(Clone, Debug)]
pub struct Demo {
    pub secret_key: String,
    pub client_key: String,
}

/// A running `paygate serve`.
pub struct Gateway {
    pub child: Child,
    pub base: String,
    pub stderr_path: PathBuf,
    pub stdout_lines: Vec<String>,
}

pub struct GatewayArgs<'a> {
    pub binary: &'a Path,
    pub database: &'a Database,
    pub listen: String,
    pub env: Vec<(String, String)>,
}

impl Gateway {
    pub fn start(args: &GatewayArgs<'_>) -> Result<Gateway> {
        let stderr_path = args
            .database
            .data_dir
            .with_extension(format!("gateway-{}.log", random_hex(4)));
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut command = Command::new(args.binary);
        command
            .arg("serve")
            .args(["--listen", &args.listen])
            .arg("--data-dir")
            .arg(&args.database.data_dir)
            .args(args.database.args())
            .env_remove("PAYGATE_DATABASE_URL")
            .env("PAYGATE_LOG__LEVEL", "warn")
            .env("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if args.database.backend == Backend::Sqlite && !args.database.data_dir.exists() {
            command.arg("--init");
        }
        for (key, value) in &args.env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", args.binary.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("paygate listening on ") {
                        break rest.split_whitespace().next().unwrap_or_default().to_owned();
                    }
                    lines.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    bail!("the gateway did not start; stdout: {lines:?}\nstderr:\n{log}");
                }
            }
        };
        Ok(Gateway {
            child,
            base,
            stderr_path,
            stdout_lines: lines,
        })
    }

    pub fn demo(&self) -> Result<Demo> {
        let field = |label: &str| {
            self.stdout_lines
                .iter()
                .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
                .ok_or_else(|| anyhow!("the gateway did not print `{label}` (not a new database?)"))
        };
        Ok(Demo {
            secret_key: field("test secret key:")?,
            client_key: field("test client key:")?,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is gone (a fail point aborted it), and how it ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `PAYGATE_BENCH_KEEP_LOGS=DIR` copies each gateway's log into DIR before the run's directory goes.
        if let Some(dir) = std::env::var_os("PAYGATE_BENCH_KEEP_LOGS") {
            let name = self.stderr_path.file_name().unwrap_or_default();
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&self.stderr_path, std::path::Path::new(&dir).join(name));
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Runs a `paygate` subcommand (`ledger check`, …) on a run's database.
pub fn paygate_cli(binary: &Path, database: &Database, args: &[&str]) -> Result<(bool, String)> {
    let output = Command::new(binary)
        .args(args)
        .arg("--data-dir")
        .arg(&database.data_dir)
        .args(database.args())
        .env_remove("PAYGATE_DATABASE_URL")
        .output()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

/// A running `paygate acquirer-sim`.
pub struct Simulator {
    child: Child,
    pub base: String,
}

impl Simulator {
    pub fn start(binary: &Path, args: &[&str]) -> Result<Simulator> {
        let mut child = Command::new(binary)
            .arg("acquirer-sim")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("paygate acquirer-sim listening on ") {
                        break rest.split_whitespace().next().unwrap_or_default().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    bail!("acquirer-sim did not start");
                }
            }
        };
        Ok(Simulator { child, base })
    }

    /// Every journal entry of one acquirer, following the pages.
    pub async fn journal(&self, client: &reqwest::Client, acquirer: &str) -> Result<Vec<serde_json::Value>> {
        let mut entries = Vec::new();
        let mut after = 0u64;
        loop {
            let page: serde_json::Value = client
                .get(format!("{}/{acquirer}/journal?afterSeq={after}", self.base))
                .send()
                .await?
                .json()
                .await?;
            entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
            match page["nextAfterSeq"].as_u64() {
                Some(next) => after = next,
                None => return Ok(entries),
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) and peak resident memory of a process, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    pub cpu: Duration,
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
}

pub fn proc_stats(pid: u32) -> Result<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is index 0, so utime (field 14) is index 11 and stime (field 15) index 12.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |label: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStats {
        cpu: Duration::from_micros(ticks.saturating_mul(1_000_000) / clock_ticks()),
        peak_rss_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
    })
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_swap_the_name_and_keep_the_query() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(database_url("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }

    #[test]
    fn reads_its_own_process() {
        let stats = proc_stats(std::process::id()).expect("proc");
        assert!(stats.peak_rss_kib > 0);
        assert!(stats.peak_rss_kib >= stats.rss_kib);
    }
}
