//! The open-loop generator: operations start on a fixed schedule (constant arrival rate) whatever the gateway is
//! doing, and each latency is measured from the moment the operation was *due*, not from when it was finally sent.
//! A gateway that stalls therefore shows its stall in every operation queued behind it (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::procs::{proc_stats, ProcStats};
use crate::scenarios::{Ctx, Op, Workload};

/// One constant-rate step.
#[derive(Clone, Debug)]
pub struct Step {
    /// Operations started per second.
    pub rate: u64,
    /// Time measured (after the warm-up).
    pub duration: Duration,
    /// Time at the same rate before measuring (connections, caches, JIT-free but not cold).
    pub warmup: Duration,
    /// Operations allowed in flight; past it, arrivals wait (and their wait counts in their latency).
    pub max_in_flight: usize,
    /// How long to wait for the last operations after the schedule ends.
    pub drain: Duration,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 120 s at 3 significant figures.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant bounds are valid")
}

/// What one step measured.
#[derive(Clone, Debug)]
pub struct StepResult {
    pub workload: String,
    pub rate: u64,
    pub duration: Duration,
    /// Operations due in the measured window.
    pub due: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub all: Histogram<u64>,
    pub per_op: BTreeMap<Op, Histogram<u64>>,
    /// What the gateway reported spending (`Server-Timing`) on each successful operation.
    pub in_gateway: Histogram<u64>,
    /// Operations that succeeded per second of the measured window.
    pub achieved: f64,
    pub gateway: Option<ResourceUse>,
    pub bench_cpu: Duration,
}

/// The gateway's CPU time over the measured window and its peak RSS.
#[derive(Clone, Copy, Debug)]
pub struct ResourceUse {
    pub cpu: Duration,
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
}

impl StepResult {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn p(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.all.value_at_quantile(quantile))
    }

    /// Gateway CPU per successful operation.
    pub fn cpu_per_op(&self) -> Option<Duration> {
        let gateway = self.gateway?;
        if self.ok == 0 {
            return None;
        }
        Some(gateway.cpu / u32::try_from(self.ok).unwrap_or(u32::MAX))
    }

    /// Passes when nothing failed, the rate was kept up and p99 is within the bound.
    pub fn passes(&self, p99_bound: Duration) -> bool {
        self.error_count() == 0 && self.p(0.99) <= p99_bound && self.achieved >= 0.97 * self.rate as f64
    }

    pub fn summary(&self) -> String {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        let mut line = format!(
            "{:<9} rate {:>6}/s  achieved {:>8.1}/s  p50 {:>7} ms  p99 {:>7} ms  p99.9 {:>7} ms  max {:>8} ms  errors {}",
            self.workload,
            self.rate,
            self.achieved,
            ms(self.p(0.5)),
            ms(self.p(0.99)),
            ms(self.p(0.999)),
            ms(Duration::from_micros(self.all.max())),
            self.error_count()
        );
        line.push_str(&format!(
            "  (in gateway p99 {} ms)",
            ms(Duration::from_micros(self.in_gateway.value_at_quantile(0.99)))
        ));
        if let (Some(cpu), Some(gateway)) = (self.cpu_per_op(), self.gateway) {
            line.push_str(&format!(
                "  gateway {} µs CPU/op, peak RSS {} MiB",
                cpu.as_micros(),
                gateway.peak_rss_kib / 1024
            ));
        }
        line
    }

    pub fn to_json(&self) -> serde_json::Value {
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
        let per_op: serde_json::Map<String, serde_json::Value> = self
            .per_op
            .iter()
            .map(|(op, h)| {
                (
                    op.as_str().to_owned(),
                    serde_json::json!({"count": h.len(), "p50Us": us(h, 0.5), "p99Us": us(h, 0.99),
                                       "p999Us": us(h, 0.999), "maxUs": h.max()}),
                )
            })
            .collect();
        serde_json::json!({
            "workload": self.workload, "rate": self.rate, "durationMs": self.duration.as_millis(),
            "due": self.due, "ok": self.ok, "errors": self.errors, "achieved": self.achieved,
            "p50Us": us(&self.all, 0.5), "p99Us": us(&self.all, 0.99), "p999Us": us(&self.all, 0.999),
            "maxUs": self.all.max(), "perOp": per_op,
            "inGatewayP50Us": us(&self.in_gateway, 0.5), "inGatewayP99Us": us(&self.in_gateway, 0.99),
            "inGatewayMaxUs": self.in_gateway.max(),
            "gatewayCpuUsPerOp": self.cpu_per_op().map(|d| d.as_micros()),
            "gatewayPeakRssKib": self.gateway.map(|g| g.peak_rss_kib),
            "benchCpuMs": self.bench_cpu.as_millis(),
        })
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
    all: Option<Histogram<u64>>,
    per_op: BTreeMap<Op, Histogram<u64>>,
    in_gateway: Option<Histogram<u64>>,
}

/// Runs one step at a constant rate.
pub async fn run_step(ctx: Arc<Ctx>, workload: &Workload, step: &Step, gateway_pid: Option<u32>) -> StepResult {
    let tally = Arc::new(Mutex::new(Tally {
        all: Some(histogram()),
        in_gateway: Some(histogram()),
        ..Tally::default()
    }));
    let permits = Arc::new(Semaphore::new(step.max_in_flight));
    let interval_ns = 1_000_000_000u64 / step.rate.max(1);
    let total_ns = u64::try_from((step.warmup + step.duration).as_nanos()).unwrap_or(u64::MAX);
    let count = total_ns / interval_ns;
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + step.warmup;
    let measure_until = measure_from + step.duration;
    let seq_base = rand::random::<u32>();

    // Resource readings at the window's start, taken on time by a task of their own.
    let at_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        (
            gateway_pid.and_then(|pid| proc_stats(pid).ok()),
            proc_stats(std::process::id()).ok(),
        )
    });

    let mut due = 0u64;
    for index in 0..count {
        let intended = start + Duration::from_nanos(index * interval_ns);
        tokio::time::sleep_until(intended.into()).await;
        let measured = intended >= measure_from && intended < measure_until;
        if measured {
            due += 1;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let op = workload.pick(u64::from(seq_base).wrapping_add(index));
        let ctx = ctx.clone();
        let tally = tally.clone();
        tokio::spawn(async move {
            let (result, server_us) = crate::scenarios::SERVER_US
                .scope(std::cell::Cell::new(0), async {
                    let result = ctx.run(op).await;
                    (result, crate::scenarios::SERVER_US.with(std::cell::Cell::get))
                })
                .await;
            let latency = u64::try_from(intended.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
            drop(permit);
            if !measured {
                return;
            }
            let Ok(mut tally) = tally.lock() else { return };
            match result {
                Ok(()) => {
                    tally.ok += 1;
                    if let Some(all) = tally.all.as_mut() {
                        let _ = all.record(latency);
                    }
                    if let Some(inside) = tally.in_gateway.as_mut() {
                        let _ = inside.record(server_us.max(1));
                    }
                    let _ = tally.per_op.entry(op).or_insert_with(histogram).record(latency);
                }
                Err(error) => {
                    let class = format!("{}: {}", op.as_str(), first_line(&error.to_string()));
                    *tally.errors.entry(class).or_default() += 1;
                }
            }
        });
    }
    // Drain: every permit back means every operation finished.
    let max = u32::try_from(step.max_in_flight).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(step.drain, permits.acquire_many(max)).await;
    let (gateway_start, bench_start) = at_start.await.unwrap_or((None, None));
    let gateway_end = gateway_pid.and_then(|pid| proc_stats(pid).ok());
    let bench_end = proc_stats(std::process::id()).ok();

    let mut tally = match tally.lock() {
        Ok(mut t) => std::mem::take(&mut *t),
        Err(_) => Tally::default(),
    };
    if drained.is_err() {
        let finished = tally.ok + tally.errors.values().sum::<u64>();
        *tally
            .errors
            .entry(format!("unfinished after the {} s drain", step.drain.as_secs()))
            .or_default() += due.saturating_sub(finished);
    }
    let gateway = match (gateway_start, gateway_end) {
        (Some(a), Some(b)) => Some(resource_use(a, b)),
        _ => None,
    };
    let bench_cpu = match (bench_start, bench_end) {
        (Some(a), Some(b)) => b.cpu.saturating_sub(a.cpu),
        _ => Duration::ZERO,
    };
    StepResult {
        workload: workload.name.clone(),
        rate: step.rate,
        duration: step.duration,
        due,
        ok: tally.ok,
        errors: tally.errors,
        all: tally.all.unwrap_or_else(histogram),
        per_op: tally.per_op,
        in_gateway: tally.in_gateway.unwrap_or_else(histogram),
        achieved: tally.ok as f64 / step.duration.as_secs_f64(),
        gateway,
        bench_cpu,
    }
}

fn resource_use(start: ProcStats, end: ProcStats) -> ResourceUse {
    ResourceUse {
        cpu: end.cpu.saturating_sub(start.cpu),
        peak_rss_kib: end.peak_rss_kib,
        rss_kib: end.rss_kib,
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(120).collect()
}

/// Runs a step; a step that fails is run once more and passes if the second run does (the disk of a shared box
/// stalls now and then, and one stall in a short window decides a p99). Both runs are kept.
async fn judged_step(
    ctx: &Arc<Ctx>,
    workload: &Workload,
    step: &Step,
    p99_bound: Duration,
    gateway_pid: Option<u32>,
    steps: &mut Vec<StepResult>,
) -> Option<StepResult> {
    for attempt in 0..2 {
        let result = run_step(ctx.clone(), workload, step, gateway_pid).await;
        let passed = result.passes(p99_bound);
        eprintln!(
            "  {}{}",
            result.summary(),
            match (passed, attempt) {
                (true, _) => "",
                (false, 0) => "  ✗ (running it again)",
                (false, _) => "  ✗",
            }
        );
        steps.push(result.clone());
        if passed {
            return Some(result);
        }
    }
    None
}

/// Climbs the rate (×`factor_percent`/100) until a step fails the bound twice in a row, then bisects twice between
/// the last pass and the first failure. If the very first step fails, the rate is halved until one passes. Returns
/// every step run and the best passing one.
pub async fn find_max(
    ctx: Arc<Ctx>,
    workload: &Workload,
    template: &Step,
    p99_bound: Duration,
    factor_percent: u64,
    gateway_pid: Option<u32>,
    mut before_step: impl FnMut(u64) -> Option<String>,
) -> (Vec<StepResult>, Option<StepResult>) {
    let mut steps = Vec::new();
    let mut best: Option<StepResult> = None;
    let mut rate = template.rate.max(1);
    let mut failed_at: Option<u64> = None;
    loop {
        if let Some(reason) = before_step(rate) {
            eprintln!("  stopping at {rate}/s: {reason}");
            break;
        }
        let step = Step {
            rate,
            ..template.clone()
        };
        match judged_step(&ctx, workload, &step, p99_bound, gateway_pid, &mut steps).await {
            Some(result) => {
                best = Some(result);
                if failed_at.is_some() {
                    break;
                }
                rate = (rate.saturating_mul(factor_percent.max(101)) / 100).max(rate + 1);
            }
            None if best.is_none() && rate > 25 => {
                // Not even the first rate held: go down.
                failed_at = Some(rate);
                rate /= 2;
            }
            None => {
                if best.is_some() {
                    failed_at = Some(rate);
                }
                break;
            }
        }
    }
    if let (Some(mut high), Some(mut low)) = (failed_at, best.as_ref().map(|b| b.rate)) {
        for _ in 0..2 {
            let mid = low + (high - low) / 2;
            if mid <= low || mid >= high {
                break;
            }
            if let Some(reason) = before_step(mid) {
                eprintln!("  not bisecting at {mid}/s: {reason}");
                break;
            }
            let step = Step {
                rate: mid,
                ..template.clone()
            };
            match judged_step(&ctx, workload, &step, p99_bound, gateway_pid, &mut steps).await {
                Some(result) => {
                    low = mid;
                    best = Some(result);
                }
                None => high = mid,
            }
        }
    }
    (steps, best)
}
