//! Black-box harness: runs the real `paygate` binary on a fresh database and talks HTTP to it.
//!
//! The backend comes from the environment: `PAYGATE_TEST_DATABASE_URL=postgres://…` runs every test on its own
//! new PostgreSQL database (created through that URL, dropped afterwards); unset, each test gets a SQLite data
//! directory of its own.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use paygate_store::testing::TestDatabase;
use paygate_store::DatabaseUrl;

pub const BIN: &str = env!("CARGO_BIN_EXE_paygate");

/// A database for one test: PostgreSQL (a fresh database from `paygate_store::testing`) or SQLite (the gateway's
/// own data directory, so the default layout is what gets tested).
pub struct TestDb {
    postgres: Option<TestDatabase>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let database = TestDatabase::new().await;
        TestDb {
            postgres: database.is_postgres().then_some(database),
        }
    }

    /// Always SQLite, whatever the environment says.
    pub fn sqlite() -> TestDb {
        TestDb { postgres: None }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// `--database-url …` for PostgreSQL; nothing for SQLite (the data directory holds it).
    pub fn args(&self) -> Vec<String> {
        match &self.postgres {
            Some(TestDatabase {
                url: DatabaseUrl::Postgres(url),
                ..
            }) => vec!["--database-url".into(), url.clone()],
            _ => vec![],
        }
    }
}

pub fn hex_random() -> String {
    let mut out = String::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mixed = seed
        ^ (u128::from(std::process::id()) << 64)
        ^ u128::from(COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) << 96;
    for byte in mixed.to_le_bytes().iter().take(12) {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A running gateway.
pub struct Gateway {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub stdout_lines: Vec<String>,
    pub stderr_path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

pub struct Demo {
    pub mid: String,
    pub secret_key: String,
    pub client_key: String,
}

impl Gateway {
    /// Starts `paygate serve` on port 0 in `data_dir` with extra arguments and environment.
    pub fn start(data_dir: PathBuf, db: &TestDb, extra_args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let stderr_path = data_dir.with_extension(format!("stderr-{}.log", hex_random()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(db.args())
            .args(extra_args)
            .env_remove("PAYGATE_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
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
                        break rest.split_whitespace().next().unwrap().to_owned();
                    }
                    lines.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    panic!("gateway did not start; stdout: {lines:?}\nstderr:\n{log}");
                }
            }
        };
        Gateway {
            child,
            base,
            data_dir,
            stdout_lines: lines,
            stderr_path,
            _tmp: None,
        }
    }

    /// A brand-new gateway on a fresh database in a temporary data directory; returns it and the demo keys.
    pub fn fresh(db: &TestDb, extra_args: &[&str], env: &[(&str, &str)]) -> (Gateway, Demo) {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        // SQLite in a directory that does not exist yet needs --init; PostgreSQL runs as the README says, without it.
        let mut init = if db.is_postgres() { vec![] } else { vec!["--init"] };
        init.extend_from_slice(extra_args);
        let mut gateway = Gateway::start(data_dir, db, &init, env);
        gateway._tmp = Some(tmp);
        let demo = gateway.demo().expect("a new database prints the demo merchant");
        (gateway, demo)
    }

    pub fn demo(&self) -> Option<Demo> {
        let field = |label: &str| {
            self.stdout_lines
                .iter()
                .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
        };
        Some(Demo {
            mid: field("mId:")?,
            secret_key: field("test secret key:")?,
            client_key: field("test client key:")?,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("gateway did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Runs a `paygate` subcommand against a data directory/database; returns (success, stdout, stderr).
pub fn cli(args: &[&str], data_dir: &std::path::Path, db: &TestDb) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args(db.args())
        .env_remove("PAYGATE_DATABASE_URL")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A `paygate acquirer-sim` process.
pub struct SimProcess {
    pub child: Child,
    pub base: String,
}

impl SimProcess {
    pub fn start(args: &[&str]) -> SimProcess {
        let mut child = Command::new(BIN)
            .arg("acquirer-sim")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("paygate acquirer-sim listening on ") {
                        break rest.split_whitespace().next().unwrap().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("acquirer-sim did not start");
                }
            }
        };
        SimProcess { child, base }
    }

    /// Every journal entry of one acquirer, following the pages.
    pub async fn journal(&self, acquirer: &str) -> Vec<serde_json::Value> {
        let mut entries = Vec::new();
        let mut after = 0u64;
        loop {
            let page: serde_json::Value = http()
                .get(format!("{}/{acquirer}/journal?afterSeq={after}", self.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
            match page["nextAfterSeq"].as_u64() {
                Some(next) => after = next,
                None => return entries,
            }
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
