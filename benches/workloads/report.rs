//! The one JSON line: required keys in WORKLOADS.md's order, extras after.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::measure::percentile;
use crate::spec::{Mode, Spec};

/// What a measured phase produced.
#[derive(Default)]
pub struct Outcome {
    /// Acquisitions per task.
    pub per_task: Vec<u64>,
    /// Cycle latency `t_c - t_a` and acquire wait `t_b - t_a`, µs.
    pub cycles_us: Vec<u32>,
    pub waits_us: Vec<u32>,
    pub hold_sum: Duration,
    pub holds: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub max_holders: usize,
    pub elapsed: Duration,
    /// mutex-handoff: `t_acquired(waiter) - t_rel_done(holder)`, µs.
    pub handoffs_us: Vec<i64>,
    pub idle: Option<Idle>,
    /// Long runs (`CYCLES`): memory at 10 %, 50 %, 100 % of the cycles.
    pub checkpoints: Vec<Checkpoint>,
}

impl Outcome {
    pub fn error(&mut self, e: impl ToString) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }
}

#[derive(Default)]
pub struct Idle {
    pub waiters: usize,
    pub timeouts: u64,
    pub acquired: u64,
    pub stragglers: u64,
    pub rss_mb: Option<f64>,
}

pub struct Checkpoint {
    pub pct: u64,
    pub cycles: u64,
    pub at: Duration,
    pub rss_mb: Option<f64>,
    /// Heap bytes allocated and not freed since the measured phase began
    /// (`ALLOC_COUNT=1` only).
    pub live_heap_mb: Option<f64>,
}

/// Everything besides the outcome that the line reports.
pub struct Run<'a> {
    pub workload: &'a str,
    pub spec: Spec,
    pub server_cmds: BTreeMap<String, u64>,
    pub client_cmds: u64,
    pub options: String,
    pub loadavg_1m: Option<f64>,
    /// (allocations, bytes) during the measured phase, with `ALLOC_COUNT=1`.
    pub allocs: Option<(u64, u64)>,
}

/// An ordered JSON object.
#[derive(Default)]
struct Line(String);

impl Line {
    fn raw(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let sep = if self.0.is_empty() { '{' } else { ',' };
        let _ = write!(self.0, "{sep}\"{key}\":{value}");
        self
    }
    fn num(&mut self, key: &str, v: f64) -> &mut Self {
        self.raw(key, r3(v))
    }
    fn opt(&mut self, key: &str, v: Option<f64>) -> &mut Self {
        self.raw(key, v.map_or_else(|| "null".into(), r3))
    }
    fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.raw(key, quote(v))
    }
    fn null(&mut self, key: &str) -> &mut Self {
        self.raw(key, "null")
    }
    fn done(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn r3(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        "null".into()
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn per(map: &BTreeMap<String, u64>, div: f64) -> String {
    let items: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), r3(*v as f64 / div)))
        .collect();
    format!("{{{}}}", items.join(","))
}

fn jain(xs: &[u64]) -> Option<f64> {
    let sum: f64 = xs.iter().map(|&x| x as f64).sum();
    let sq: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
    (sq > 0.0).then(|| sum * sum / (xs.len() as f64 * sq))
}

pub fn line(run: &Run<'_>, mut o: Outcome) -> String {
    let spec = run.spec;
    let idle = spec.mode == Mode::Idle;
    let handoff = spec.mode == Mode::Handoff;
    let contended = spec.contended();
    let solo = !contended && !idle;
    let acq: u64 = match &o.idle {
        Some(i) => i.acquired,
        None => o.per_task.iter().sum(),
    };
    let acqf = acq.max(1) as f64;
    let secs = o.elapsed.as_secs_f64();
    let server_total: u64 = run.server_cmds.values().sum();
    o.cycles_us.sort_unstable();
    o.waits_us.sort_unstable();
    o.handoffs_us.sort_unstable();
    let us = |v: Option<u32>| v.map(f64::from);
    let ms = |v: Option<u32>| v.map(|v| f64::from(v) / 1e3);
    let hms = |v: Option<i64>| v.map(|v| v as f64 / 1e3);
    // mutex-handoff reports the hand-off latency in the wait columns
    let (w50, w99, wmax) = if handoff {
        let h = &o.handoffs_us;
        (
            hms(percentile(h, 50.0)),
            hms(percentile(h, 99.0)),
            hms(h.last().copied()),
        )
    } else {
        let w = &o.waits_us;
        (
            ms(percentile(w, 50.0)),
            ms(percentile(w, 99.0)),
            ms(w.last().copied()),
        )
    };
    let c = &o.cycles_us;
    let solo_us = |v: Option<u32>| if solo { us(v) } else { None };
    let wait = |v: Option<f64>| if contended { v } else { None };
    let mut notes = Vec::new();
    if o.max_holders > spec.limit() {
        notes.push(format!(
            "SAFETY VIOLATION: max holders {} > {}",
            o.max_holders,
            spec.limit()
        ));
    }
    if let Some(e) = &o.first_error {
        notes.push(format!("{} errors, first: {e}", o.errors));
    }
    if let Some(i) = o.idle.as_ref().filter(|i| i.stragglers > 0) {
        notes.push(format!(
            "{} waiters still waiting at the cap (aborted)",
            i.stragglers
        ));
    }
    let fairness = (spec.tasks > 1 && !idle)
        .then(|| jain(&o.per_task))
        .flatten();

    let mut l = Line::default();
    l.str("impl", "redsem")
        .str("workload", run.workload)
        .num(
            "ops_per_s",
            if idle {
                server_total as f64
            } else {
                acq as f64
            } / secs,
        )
        .opt("p50_us", solo_us(percentile(c, 50.0)))
        .opt("p99_us", solo_us(percentile(c, 99.0)))
        .opt("wait_p50_ms", wait(w50))
        .opt("wait_p99_ms", wait(w99));
    if idle {
        l.null("cmds_per_acq");
    } else {
        l.num("cmds_per_acq", server_total as f64 / acqf);
    }
    l.raw("max_holders", o.max_holders)
        .opt("fairness", fairness)
        .str("notes", &notes.join("; "));
    // extras
    if idle {
        l.null("client_cmds_per_acq")
            .null("server_cmds_by_name_per_acq");
    } else {
        l.num("client_cmds_per_acq", run.client_cmds as f64 / acqf)
            .raw("server_cmds_by_name_per_acq", per(&run.server_cmds, acqf));
    }
    l.opt("wait_max_ms", wait(wmax))
        .opt("p90_us", solo_us(percentile(c, 90.0)))
        .opt("p999_us", solo_us(percentile(c, 99.9)))
        .opt("max_us", solo_us(c.last().copied()));
    if spec.tasks > 1 && !idle {
        let min = o.per_task.iter().min().copied().unwrap_or(0);
        let max = o.per_task.iter().max().copied().unwrap_or(0);
        l.raw("per_task_min_max", format!("[{min},{max}]"));
    } else {
        l.null("per_task_min_max");
    }
    let hold_mean = o.hold_sum.as_secs_f64() * 1e3 / o.holds.max(1) as f64;
    l.opt("hold_mean_ms", contended.then_some(hold_mean))
        .raw("acquisitions", acq)
        .num("elapsed_s", secs)
        .raw("errors", o.errors)
        .opt("loadavg_1m", run.loadavg_1m);
    if let Ok(tag) = std::env::var("RUN_TAG") {
        l.str("run_tag", &tag);
    }
    l.str(
        "lib",
        &format!(
            "redsem {} (redis-rs 1, tokio multi-thread)",
            env!("CARGO_PKG_VERSION")
        ),
    )
    .str("options", &run.options);
    if handoff {
        let h = &o.handoffs_us;
        let mean = (!h.is_empty()).then(|| h.iter().sum::<i64>() as f64 / h.len() as f64 / 1e3);
        l.opt("handoff_p50_ms", w50)
            .opt("handoff_p99_ms", w99)
            .opt("handoff_max_ms", wmax)
            .opt("handoff_mean_ms", mean)
            .raw("handoffs", h.len());
    }
    if let Some(i) = &o.idle {
        l.raw("waiters", i.waiters)
            .num("server_cmds_per_s", server_total as f64 / secs)
            .raw("server_cmds_by_name_per_s", per(&run.server_cmds, secs))
            .num("client_cmds_per_s", run.client_cmds as f64 / secs)
            .opt("client_rss_mb", i.rss_mb)
            .raw("waiter_timeouts", i.timeouts)
            .raw("waiter_acquired", i.acquired)
            .raw("waiter_stragglers", i.stragglers);
    }
    for cp in &o.checkpoints {
        let p = cp.pct;
        l.opt(&format!("rss_mb_at_{p}pct"), cp.rss_mb)
            .raw(&format!("cycles_at_{p}pct"), cp.cycles)
            .num(&format!("seconds_at_{p}pct"), cp.at.as_secs_f64());
        if let Some(live) = cp.live_heap_mb {
            l.num(&format!("live_heap_mb_at_{p}pct"), live);
        }
    }
    if let Some((allocs, bytes)) = run.allocs {
        l.num("allocs_per_acq", allocs as f64 / acqf)
            .num("alloc_bytes_per_acq", bytes as f64 / acqf);
    }
    l.done()
}
