//! Running a load: sessions ramped up, then requests closed-loop (each session sends its next
//! request when the last one is answered) or open-loop at a fixed total rate. Open-loop
//! latency is measured from each request's intended send time, so a stalled server cannot
//! hide its stall by slowing the sender (no coordinated omission): each session has its own
//! schedule, as wrk2 does per connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{
    kind_of, with_timeout, Era, Request, Session, SharedConnections, StdioPool, Target,
};

pub struct RunConfig {
    pub target: Target,
    pub era: Era,
    pub sessions: usize,
    pub ramp_up: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total requests per second (open loop), or `None` for closed loop.
    pub rate: Option<f64>,
    /// The request mix, with integer weights.
    pub mix: Vec<(Request, u32)>,
    pub timeout: Duration,
    pub check_ids: bool,
    pub processes: usize,
    pub quiet: bool,
    /// The load generator's own worker threads (for the report).
    pub threads: usize,
    /// HTTP connections the sessions share; `None`: one of its own each.
    pub connections: Option<usize>,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
}

struct WorkerResult {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    ok: u64,
}

pub struct Report {
    pub sessions: usize,
    pub connected: usize,
    pub measured: Duration,
    pub offered_rps: Option<f64>,
    pub achieved_rps: f64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub hist: Histogram<u64>,
    /// Every request answered, warm-up included (for CPU per request).
    pub total: u64,
    /// CPU seconds this load generator used over the run, and the stdio server processes it
    /// spawned (none for HTTP targets): per request, what each side cost.
    pub loadgen_cpu_s: Option<f64>,
    pub server_cpu_s: Option<f64>,
    /// The load generator's worker threads, and the wall time its CPU was measured over.
    pub threads: usize,
    pub wall_s: f64,
}

fn new_hist() -> Histogram<u64> {
    // Microseconds, 1 us to 1 hour, 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

pub async fn run(cfg: RunConfig) -> Result<Report, String> {
    let cfg = Arc::new(cfg);
    let procs = Arc::new(StdioPool::start(&cfg.target, cfg.era, cfg.processes).await?);
    let shared = match (&cfg.target, cfg.connections) {
        (Target::Http { uri }, Some(n)) => Some(Arc::new(SharedConnections::open(uri, n).await?)),
        _ => None,
    };
    let cpu_at_start = (crate::cpu::process_seconds("self"), procs.cpu_seconds());
    let wall_at_start = std::time::Instant::now();
    let counters = Arc::new(Counters::default());
    let start = Instant::now() + cfg.ramp_up;
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let connected = Arc::new(AtomicU64::new(0));

    let progress = (!cfg.quiet).then(|| {
        let counters = counters.clone();
        let connected = connected.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = counters.done.load(Ordering::Relaxed);
                eprint!(
                    "\r[{:>4.0}s] sessions {:>5}  done {:>9}  {:>8} req/s  errors {:>6}   ",
                    t0.elapsed().as_secs_f64(),
                    connected.load(Ordering::Relaxed),
                    done,
                    done - last,
                    counters.errors.load(Ordering::Relaxed)
                );
                last = done;
            }
        })
    });

    let weights: u32 = cfg.mix.iter().map(|(_, w)| *w).sum::<u32>().max(1);
    let mut tasks = Vec::new();
    for i in 0..cfg.sessions {
        let cfg = cfg.clone();
        let procs = procs.clone();
        let shared = shared.clone();
        let counters = counters.clone();
        let connected = connected.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = WorkerResult {
                hist: new_hist(),
                errors: BTreeMap::new(),
                ok: 0,
            };
            // Ramp up: session i connects at i/N of the ramp-up time.
            let at = Instant::now() + cfg.ramp_up.mul_f64(i as f64 / cfg.sessions as f64);
            tokio::time::sleep_until(at.into()).await;
            let mut session = match with_timeout(
                cfg.timeout,
                Session::connect(
                    &cfg.target,
                    cfg.era,
                    cfg.check_ids,
                    &procs,
                    shared.as_deref().map(|c| (c, i)),
                ),
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    // Kept apart from request errors: a session that never connected sent none.
                    *out.errors
                        .entry(format!("session-{}", kind_of(&e)))
                        .or_default() += 1;
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    return out;
                }
            };
            connected.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(start.into()).await;
            // Open loop: this session's share of the rate, offset so sessions interleave.
            let interval = cfg
                .rate
                .map(|r| Duration::from_secs_f64(cfg.sessions as f64 / r));
            let offset = interval
                .map(|iv| iv.mul_f64(i as f64 / cfg.sessions as f64))
                .unwrap_or_default();
            let mut n: u64 = 0;
            loop {
                let intended = match interval {
                    Some(iv) => start + offset + iv.mul_f64(n as f64),
                    None => Instant::now(),
                };
                if intended >= end {
                    break;
                }
                if interval.is_some() {
                    tokio::time::sleep_until(intended.into()).await;
                }
                // Weighted choice, deterministic per session.
                let pick = ((n.wrapping_mul(2654435761).wrapping_add(i as u64 * 40503))
                    % weights as u64) as u32;
                let mut acc = 0;
                let req = cfg.mix.iter().find(|(_, w)| {
                    acc += w;
                    pick < acc
                });
                let Some((req, _)) = req else { break };
                let result = with_timeout(cfg.timeout, session.call(req)).await;
                let latency = intended.elapsed();
                n += 1;
                counters.done.fetch_add(1, Ordering::Relaxed);
                if intended < measure_from {
                    continue;
                }
                match result {
                    Ok(()) => {
                        out.ok += 1;
                        let _ = out.hist.record((latency.as_micros() as u64).max(1));
                    }
                    Err(e) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        *out.errors.entry(kind_of(&e)).or_default() += 1;
                        // A failed request still took this long: it counts in the latencies too.
                        let _ = out.hist.record((latency.as_micros() as u64).max(1));
                    }
                }
            }
            out
        }));
    }
    let mut report = Report {
        sessions: cfg.sessions,
        connected: 0,
        measured: cfg.duration,
        offered_rps: cfg.rate,
        achieved_rps: 0.0,
        ok: 0,
        errors: BTreeMap::new(),
        hist: new_hist(),
        total: 0,
        loadgen_cpu_s: None,
        server_cpu_s: None,
        threads: cfg.threads,
        wall_s: 0.0,
    };
    for t in tasks {
        let r = t.await.map_err(|e| format!("worker failed: {e}"))?;
        report.ok += r.ok;
        for (k, v) in r.errors {
            *report.errors.entry(k).or_default() += v;
        }
        let _ = report.hist.add(&r.hist);
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    report.connected = connected.load(Ordering::Relaxed) as usize;
    report.total = counters.done.load(Ordering::Relaxed);
    let since = |end: Option<f64>, start: Option<f64>| Some(end? - start?);
    report.loadgen_cpu_s = since(crate::cpu::process_seconds("self"), cpu_at_start.0);
    report.wall_s = wall_at_start.elapsed().as_secs_f64();
    report.server_cpu_s = since(procs.cpu_seconds(), cpu_at_start.1);
    // Requests scheduled in the measured window, answered (late ones included).
    report.achieved_rps = report.hist.len() as f64 / cfg.duration.as_secs_f64();
    Ok(report)
}

impl Report {
    pub fn percentile_us(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q)
    }

    pub fn print(&self) {
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "sessions      {} ({} connected)",
            self.sessions, self.connected
        );
        match self.offered_rps {
            Some(r) => println!(
                "rate          offered {:.0} req/s, achieved {:.0} req/s",
                r, self.achieved_rps
            ),
            None => println!("rate          {:.0} req/s (closed loop)", self.achieved_rps),
        }
        println!(
            "requests      {} ok, {} errors in {:.1}s",
            self.ok,
            self.errors.values().sum::<u64>(),
            self.measured.as_secs_f64()
        );
        println!(
            "latency ms    p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}{}",
            ms(self.percentile_us(0.5)),
            ms(self.percentile_us(0.9)),
            ms(self.percentile_us(0.99)),
            ms(self.percentile_us(0.999)),
            ms(self.hist.max()),
            if self.offered_rps.is_some() {
                "  (from intended send times)"
            } else {
                ""
            }
        );
        for (k, v) in &self.errors {
            println!("error         {k}: {v}");
        }
        let per_request = |s: f64| s * 1e6 / self.total.max(1) as f64;
        match (self.loadgen_cpu_s, self.server_cpu_s) {
            (Some(l), Some(s)) => println!(
                "cpu us/req    loadgen {:.1}, stdio server {:.1}",
                per_request(l),
                per_request(s)
            ),
            (Some(l), None) => println!("cpu us/req    loadgen {:.1}", per_request(l)),
            _ => {}
        }
        if let Some(busy) = self.loadgen_busy() {
            println!(
                "loadgen       {} threads, {:.0}% busy (its CPU over wall time x threads)",
                self.threads,
                busy * 100.0
            );
        }
    }

    /// The load generator's CPU over its wall time times its threads: near 1, it may have
    /// been the bottleneck.
    pub fn loadgen_busy(&self) -> Option<f64> {
        let cpu = self.loadgen_cpu_s?;
        (self.wall_s > 0.0).then(|| cpu / (self.wall_s * self.threads.max(1) as f64))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "sessions": self.sessions,
            "connected": self.connected,
            "duration_s": self.measured.as_secs_f64(),
            "offered_rps": self.offered_rps,
            "achieved_rps": self.achieved_rps,
            "ok": self.ok,
            // Requests scheduled in the measured window: `ok` plus every error not "session-*"
            // (sessions that failed to start).
            "requests": self.hist.len(),
            "total": self.total,
            "loadgen_cpu_s": self.loadgen_cpu_s,
            "server_cpu_s": self.server_cpu_s,
            "loadgen_threads": self.threads,
            "loadgen_busy": self.loadgen_busy(),
            "errors": self.errors,
            "latency_us": {
                "p50": self.percentile_us(0.5),
                "p90": self.percentile_us(0.9),
                "p99": self.percentile_us(0.99),
                "p99_9": self.percentile_us(0.999),
                "max": self.hist.max(),
                "mean": self.hist.mean(),
            },
        })
    }
}
