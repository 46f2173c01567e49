//! `paygate-bench`: paygate's own load and fault harness.
//!
//! * `load`: open-loop load at a constant arrival rate (or climbing to the highest rate that keeps p99 within a
//!   bound), HdrHistogram latencies, every answer checked, the gateway's CPU per operation and peak RSS.
//! * `ceiling`: the same box's raw durable insert-transaction rate for the same database and durability.
//! * `suite`: the ceilings and the load scenarios in one run, with the ratios BENCHMARKS.md reports.
//! * `fault`: crash and fault scenarios that end with a verdict (exit status 0 only when every invariant held).
//!
//! Every command starts its own gateway (and simulator) on a fresh database, so runs do not depend on each other.

mod ceiling;
mod faults;
mod load;
mod procs;
mod scenarios;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use load::{Step, StepResult};
use procs::{Database, Demo, Gateway, GatewayArgs, Setup};
use scenarios::{Ctx, Op, Workload};

#[derive(Parser)]
#[command(name = "paygate-bench", version, about = "paygate's load and fault harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open-loop load against a fresh gateway.
    Load(LoadArgs),
    /// The raw durable insert-transaction rate of the backend (the reference ceiling).
    Ceiling {
        #[command(flatten)]
        setup: Setup,
        /// Seconds to insert for.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// PostgreSQL connections inserting at once (SQLite always uses one: it has a single writer).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Ceilings plus every load scenario, climbing each to its highest rate within the p99 bound.
    Suite(SuiteArgs),
    /// Crash and fault scenarios with a verdict.
    Fault(faults::FaultArgs),
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    #[command(flatten)]
    setup: Setup,
    #[command(flatten)]
    shape: Shape,
    /// What to send: one operation kind, or `mix` (60% checkout, 5% cancel, 25% history, 10% lookup).
    #[arg(long, default_value = "key-in")]
    workload: String,
    /// Operations started per second (with --find-max: the first step).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Climb the rate until p99 exceeds --p99-ms, an error occurs or the rate is not kept up.
    #[arg(long)]
    find_max: bool,
    /// Payments created before measuring (lookups, cancels and history pages need them).
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Idle keep-alive connections held open on the gateway during the run (memory with many connections).
    #[arg(long, default_value_t = 0)]
    idle_connections: usize,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct Shape {
    /// Seconds measured per step.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds at the step's rate before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// The p99 bound, in milliseconds: --find-max climbs to it; a fixed-rate step above it fails (exit 1).
    #[arg(long = "p99-ms", default_value_t = 50)]
    p99_ms: u64,
    /// Rate multiplier per climbing step, in percent.
    #[arg(long, default_value_t = 125)]
    factor_percent: u64,
    /// Operations in flight at most; arrivals past it wait, and the wait counts in their latency.
    #[arg(long, default_value_t = 2_000)]
    max_in_flight: usize,
    /// Send requests without an Idempotency-Key (by default every POST carries a fresh one, as merchants should).
    #[arg(long)]
    no_idempotency_key: bool,
    /// Concurrent requests while preloading.
    #[arg(long, default_value_t = 64)]
    preload_concurrency: usize,
}

impl Shape {
    fn step(&self, rate: u64) -> Step {
        Step {
            rate,
            duration: Duration::from_secs(self.duration.max(1)),
            warmup: Duration::from_secs(self.warmup),
            max_in_flight: self.max_in_flight.max(1),
            drain: Duration::from_secs(60),
        }
    }
}

#[derive(clap::Args, Clone)]
struct SuiteArgs {
    #[command(flatten)]
    setup: Setup,
    #[command(flatten)]
    shape: Shape,
    /// Payments preloaded for the history, lookup and cancel parts.
    #[arg(long, default_value_t = 20_000)]
    preload: u64,
    /// First rate of every climb.
    #[arg(long, default_value_t = 200)]
    start_rate: u64,
    /// Idle connections held during the memory measurement.
    #[arg(long, default_value_t = 1_000)]
    idle_connections: usize,
    /// Seconds of the reference insert ceiling.
    #[arg(long, default_value_t = 10)]
    ceiling_secs: u64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_workload(name: &str) -> Result<Workload> {
    if name == "mix" {
        return Ok(Workload::mix());
    }
    use clap::ValueEnum;
    let op = Op::from_str(name, true).map_err(|_| {
        anyhow::anyhow!("unknown workload `{name}` (key-in, checkout, cancel, history, lookup, noop, mix)")
    })?;
    Ok(Workload::single(op))
}

/// A fresh database and a gateway on it, with the demo merchant's keys.
struct Target {
    database: Database,
    gateway: Gateway,
    demo: Demo,
    binary: PathBuf,
}

async fn launch(setup: &Setup) -> Result<Target> {
    let binary = setup.paygate_binary()?;
    let database = Database::create(setup).await?;
    let gateway = Gateway::start(&GatewayArgs {
        binary: &binary,
        database: &database,
        listen: "127.0.0.1:0".into(),
        env: setup.gateway_env.clone(),
    })?;
    let demo = gateway.demo()?;
    Ok(Target {
        database,
        gateway,
        demo,
        binary,
    })
}

/// Creates `count` DONE payments through the API (closed loop, `concurrency` at once); returns their keys and the
/// time span they were created in.
async fn preload(ctx: &Ctx, count: u64, concurrency: usize) -> Result<(Vec<String>, (i64, i64))> {
    let started = Instant::now();
    let from = scenarios::now_millis();
    let ctx_ref = ctx;
    let next = std::sync::atomic::AtomicU64::new(0);
    let keys = std::sync::Mutex::new(Vec::new());
    let report_every = (count / 10).max(1);
    let worker = || async {
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n >= count {
                return anyhow::Ok(());
            }
            let key = ctx_ref.preload_key_in().await.context("preload key-in")?;
            if let Ok(mut keys) = keys.lock() {
                keys.push(key);
            }
            if (n + 1).is_multiple_of(report_every) {
                let elapsed = started.elapsed().as_secs_f64();
                eprintln!("  preloaded {} of {count} ({:.0}/s)", n + 1, (n + 1) as f64 / elapsed);
            }
        }
    };
    let workers: Vec<_> = (0..concurrency.max(1)).map(|_| worker()).collect();
    for result in join_all(workers).await {
        result?;
    }
    let until = scenarios::now_millis();
    let keys = keys.into_inner().unwrap_or_default();
    Ok((keys, (from, until)))
}

/// Runs futures concurrently on this task (no `futures` dependency needed for this one use).
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, future) in pinned.iter_mut().enumerate() {
            if outputs[index].is_some() {
                continue;
            }
            match future.as_mut().poll(cx) {
                std::task::Poll::Ready(output) => outputs[index] = Some(output),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Opens `count` keep-alive connections, each having served one request, and keeps them open.
async fn hold_connections(base: &str, count: usize) -> Result<Vec<tokio::net::TcpStream>> {
    let address = base.trim_start_matches("http://").to_owned();
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: bench\r\nconnection: keep-alive\r\n\r\n")
            .await?;
        let mut buffer = [0u8; 512];
        let read = stream.read(&mut buffer).await?;
        if !buffer[..read].starts_with(b"HTTP/1.1 200") {
            bail!("an idle connection's first request failed");
        }
        streams.push(stream);
    }
    Ok(streams)
}

fn context_for(target: &Target, shape: &Shape) -> Result<Ctx> {
    let pool = shape.max_in_flight.clamp(16, 4_096);
    Ok(Ctx::new(
        scenarios::http_client(pool)?,
        &target.gateway.base,
        &target.demo.secret_key,
        &target.demo.client_key,
        !shape.no_idempotency_key,
    ))
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    serde_json::json!({"cpu": cpu, "cores": cores})
}

async fn load_command(args: LoadArgs) -> Result<bool> {
    let workload = parse_workload(&args.workload)?;
    let target = launch(&args.setup).await?;
    eprintln!(
        "gateway on {} ({}), pid {}",
        target.gateway.base,
        args.setup.backend.as_str(),
        target.gateway.pid()
    );
    let mut ctx = context_for(&target, &args.shape)?;
    let needs_fixtures = workload.needs(Op::Cancel) || workload.needs(Op::History) || workload.needs(Op::Lookup);
    if needs_fixtures || args.preload > 0 {
        let count = args.preload.max(1_000);
        eprintln!("preloading {count} payments");
        let (keys, span) = preload(&ctx, count, args.shape.preload_concurrency).await?;
        ctx.set_fixtures(keys, span);
    }
    let _held = if args.idle_connections > 0 {
        eprintln!("holding {} idle connections", args.idle_connections);
        hold_connections(&target.gateway.base, args.idle_connections).await?
    } else {
        Vec::new()
    };
    let ctx = Arc::new(ctx);
    let pid = Some(target.gateway.pid());
    let bound = Duration::from_millis(args.shape.p99_ms);
    let (steps, best) = if args.find_max {
        let cancel_share = workload.share(Op::Cancel);
        let duration = args.shape.warmup + args.shape.duration;
        let ctx_for_check = ctx.clone();
        load::find_max(
            ctx.clone(),
            &workload,
            &args.shape.step(args.rate),
            bound,
            args.shape.factor_percent,
            pid,
            move |rate| cancel_budget(&ctx_for_check, cancel_share, rate, duration),
        )
        .await
    } else {
        let result = load::run_step(ctx.clone(), &workload, &args.shape.step(args.rate), pid).await;
        eprintln!("  {}", result.summary());
        (vec![result.clone()], result.passes(bound).then_some(result))
    };
    let ok = best.is_some();
    if args.find_max {
        match &best {
            Some(best) => println!("highest rate with p99 ≤ {} ms: {}", args.shape.p99_ms, best.summary()),
            None => println!("no step passed (p99 ≤ {} ms, no errors)", args.shape.p99_ms),
        }
    } else if let Some(step) = steps.first() {
        println!("{}", step.summary());
    }
    if let Some(path) = &args.json {
        let value = serde_json::json!({
            "machine": machine(), "backend": args.setup.backend.as_str(), "workload": workload.name,
            "p99BoundMs": args.shape.p99_ms, "steps": steps.iter().map(StepResult::to_json).collect::<Vec<_>>(),
            "best": best.as_ref().map(StepResult::to_json),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&value)?)?;
    }
    let (ledger_ok, ledger) = procs::paygate_cli(&target.binary, &target.database, &["ledger", "check"])?;
    eprintln!("ledger check after the run: {}", ledger.trim());
    target.database.drop_database().await;
    if !ledger_ok {
        bail!("the ledger does not balance after the run");
    }
    Ok(ok)
}

/// Cancels consume preloaded payments: refuse a step that would run out (its errors would be the harness's fault).
fn cancel_budget(ctx: &Ctx, share: f64, rate: u64, seconds: u64) -> Option<String> {
    if share == 0.0 {
        return None;
    }
    let needed = (rate * seconds) as f64 * share * 1.05;
    let left = ctx.cancelable_left() as f64;
    (needed > left).then(|| format!("{left:.0} cancelable payments left, the step needs {needed:.0} (raise --preload)"))
}

async fn ceiling_command(setup: Setup, duration: u64, concurrency: usize) -> Result<()> {
    let ceiling = ceiling::measure(&setup, Duration::from_secs(duration.max(1)), concurrency).await?;
    println!("{}", ceiling.summary());
    Ok(())
}

async fn suite_command(args: SuiteArgs) -> Result<bool> {
    let started = Instant::now();
    let bound = Duration::from_millis(args.shape.p99_ms);
    let backend = args.setup.backend;
    eprintln!("== reference: raw durable insert transactions ({})", backend.as_str());
    let pool: usize = args
        .setup
        .gateway_env
        .iter()
        .find(|(k, _)| k == "PAYGATE_DATABASE__POSTGRES_POOL_MAX")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(16);
    let ceiling = ceiling::measure(&args.setup, Duration::from_secs(args.ceiling_secs.max(1)), pool).await?;
    eprintln!("  {}", ceiling.summary());

    let mut results: Vec<(String, Option<StepResult>, Vec<StepResult>)> = Vec::new();
    // Each scenario gets its own gateway on its own fresh database.
    for name in ["noop", "key-in", "checkout", "mix", "history", "lookup"] {
        eprintln!("== {name} ({}), climbing from {}/s", backend.as_str(), args.start_rate);
        let workload = parse_workload(name)?;
        let target = launch(&args.setup).await?;
        let mut ctx = context_for(&target, &args.shape)?;
        if workload.needs(Op::Cancel) || workload.needs(Op::History) || workload.needs(Op::Lookup) {
            eprintln!("  preloading {} payments", args.preload);
            let (keys, span) = preload(&ctx, args.preload, args.shape.preload_concurrency).await?;
            ctx.set_fixtures(keys, span);
        }
        let ctx = Arc::new(ctx);
        let cancel_share = workload.share(Op::Cancel);
        let seconds = args.shape.warmup + args.shape.duration;
        let ctx_for_check = ctx.clone();
        let (steps, best) = load::find_max(
            ctx.clone(),
            &workload,
            &args.shape.step(args.start_rate),
            bound,
            args.shape.factor_percent,
            Some(target.gateway.pid()),
            move |rate| cancel_budget(&ctx_for_check, cancel_share, rate, seconds),
        )
        .await;
        let (ledger_ok, ledger) = procs::paygate_cli(&target.binary, &target.database, &["ledger", "check"])?;
        if !ledger_ok {
            bail!("{name}: the ledger does not balance after the run: {ledger}");
        }
        target.database.drop_database().await;
        results.push((name.to_owned(), best, steps));
    }

    // Memory with many connections: key-ins at a modest rate while `idle_connections` keep-alive connections wait.
    eprintln!(
        "== memory: key-in at {}/s with {} idle connections held",
        args.start_rate, args.idle_connections
    );
    let target = launch(&args.setup).await?;
    let ctx = Arc::new(context_for(&target, &args.shape)?);
    let held = hold_connections(&target.gateway.base, args.idle_connections).await?;
    let memory = load::run_step(
        ctx,
        &Workload::single(Op::KeyIn),
        &args.shape.step(args.start_rate),
        Some(target.gateway.pid()),
    )
    .await;
    eprintln!("  {}", memory.summary());
    drop(held);
    target.database.drop_database().await;
    drop(target);

    // The report.
    let ceiling_rate = ceiling.per_second();
    let noop_rate = results
        .iter()
        .find(|(n, _, _)| n == "noop")
        .and_then(|(_, b, _)| b.as_ref().map(|b| b.achieved));
    println!();
    println!(
        "paygate-bench suite — {} — {} — p99 bound {} ms, {} s per step",
        backend.as_str(),
        machine()["cpu"].as_str().unwrap_or(""),
        args.shape.p99_ms,
        args.shape.duration
    );
    println!("reference: raw durable insert transactions {:.0}/s", ceiling_rate);
    println!();
    println!("| scenario | ops/s at p99 ≤ {} ms | × insert ceiling | × noop ceiling | p50 ms | p99 ms | p99.9 ms | gateway CPU µs/op | peak RSS MiB |", args.shape.p99_ms);
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, best, _) in &results {
        match best {
            Some(b) => println!(
                "| {name} | {:.0} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
                b.achieved,
                b.achieved / ceiling_rate,
                noop_rate.map(|n| format!("{:.2}", b.achieved / n)).unwrap_or_default(),
                b.p(0.5).as_secs_f64() * 1e3,
                b.p(0.99).as_secs_f64() * 1e3,
                b.p(0.999).as_secs_f64() * 1e3,
                b.cpu_per_op().map(|d| d.as_micros().to_string()).unwrap_or_default(),
                b.gateway
                    .map(|g| (g.peak_rss_kib / 1024).to_string())
                    .unwrap_or_default(),
            ),
            None => println!("| {name} | no step passed | | | | | | | |"),
        }
    }
    println!(
        "\nmemory: {} idle connections + key-in at {}/s → gateway peak RSS {} MiB (RSS {} MiB), {} errors",
        args.idle_connections,
        args.start_rate,
        memory.gateway.map(|g| g.peak_rss_kib / 1024).unwrap_or(0),
        memory.gateway.map(|g| g.rss_kib / 1024).unwrap_or(0),
        memory.error_count()
    );
    println!("suite took {:.0} s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        let value = serde_json::json!({
            "machine": machine(), "backend": backend.as_str(), "p99BoundMs": args.shape.p99_ms,
            "ceiling": ceiling.to_json(),
            "scenarios": results.iter().map(|(name, best, steps)| serde_json::json!({
                "name": name, "best": best.as_ref().map(StepResult::to_json),
                "steps": steps.iter().map(StepResult::to_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "memory": {"idleConnections": args.idle_connections, "step": memory.to_json()},
        });
        std::fs::write(path, serde_json::to_vec_pretty(&value)?)?;
    }
    Ok(results.iter().all(|(_, best, _)| best.is_some()) && memory.error_count() == 0)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let passed = runtime.block_on(async move {
        match cli.command {
            Command::Load(args) => load_command(args).await,
            Command::Ceiling {
                setup,
                duration,
                concurrency,
            } => ceiling_command(setup, duration, concurrency).await.map(|()| true),
            Command::Suite(args) => suite_command(args).await,
            Command::Fault(args) => faults::run(args).await,
        }
    })?;
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}
