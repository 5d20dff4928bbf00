//! What the harness reads besides the locks: Redis command statistics,
//! the process's memory, the load average, percentiles, the environment.

use std::collections::BTreeMap;

use redsem_redis::redis::{self, aio::MultiplexedConnection};

/// `calls` of every `cmdstat_*` in `INFO commandstats`, summed over the
/// servers, by command name (`info` itself left out).
pub async fn commandstats(conns: &mut [MultiplexedConnection]) -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    for conn in conns.iter_mut() {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await
            .expect("INFO");
        for line in info.lines() {
            let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|rest| rest.split_once(':'))
            else {
                continue;
            };
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|v| v.parse::<u64>().ok());
            if let (Some(calls), false) = (calls, name == "info") {
                *by_name.entry(name.to_owned()).or_insert(0) += calls;
            }
        }
    }
    by_name
}

/// `after - before` per command, zero deltas left out.
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// Resident memory of this process (`VmRSS` of /proc/self/status), MiB.
pub fn vm_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted samples, as the
/// anchors harness computes it.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(last)])
}

pub fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}
