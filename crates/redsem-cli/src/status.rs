//! Who holds a lock: `redsem status`, and the status line while waiting.

use std::time::Duration;

use redsem_core::{BackendError, MUTEX_PREFIX, SEMAPHORE_PREFIX};
use redsem_redis::redis;

use crate::cli::{code, StatusArgs};
use crate::duration::show;
use crate::node::Node;

/// One holder of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// Its identifier (multi-semaphore members `<id>_<n>` grouped by id).
    pub(crate) identifier: String,
    /// Slots it takes (1 for a mutex or plain semaphore holder).
    pub(crate) permits: u32,
    /// Time left before it expires unless refreshed, in ms; `None` when
    /// the key has no expiry.
    pub(crate) ttl_ms: Option<i64>,
}

/// The Redis key of lock `key`.
pub(crate) fn redis_key(key: &str, limit: Option<u32>) -> String {
    match limit {
        None => format!("{MUTEX_PREFIX}{key}"),
        Some(_) => format!("{SEMAPHORE_PREFIX}{key}"),
    }
}

/// Reads the holders of lock `key` on `node`.
pub(crate) async fn holders(
    node: &Node,
    key: &str,
    limit: Option<u32>,
    lock_timeout: Duration,
) -> Result<Vec<Holder>, BackendError> {
    let result = read_holders(node, key, limit, lock_timeout).await;
    node.check(result)
}

async fn read_holders(
    node: &Node,
    key: &str,
    limit: Option<u32>,
    lock_timeout: Duration,
) -> Result<Vec<Holder>, BackendError> {
    let mut conn = node.connection().await?;
    let redis_key = redis_key(key, limit);
    let err = |e: redis::RedisError| {
        let kind = if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            redsem_core::BackendErrorKind::Connection
        } else {
            redsem_core::BackendErrorKind::Other
        };
        BackendError::from_source(kind, e)
    };
    // Plain pipelines: one round trip without MULTI, so a read-only ACL
    // needs nothing beyond the commands themselves.
    if limit.is_none() {
        let (value, pttl): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&redis_key)
            .cmd("PTTL")
            .arg(&redis_key)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        return Ok(value
            .map(|identifier| Holder {
                identifier,
                permits: 1,
                ttl_ms: (pttl >= 0).then_some(pttl),
            })
            .into_iter()
            .collect());
    }
    let (members, (secs, micros)): (Vec<(String, f64)>, (u64, u64)) = redis::pipe()
        .cmd("ZRANGE")
        .arg(&redis_key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .cmd("TIME")
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    let now_ms = i64::try_from(secs.saturating_mul(1_000) + micros / 1_000).unwrap_or(i64::MAX);
    let timeout_ms = i64::try_from(lock_timeout.as_millis()).unwrap_or(i64::MAX);
    Ok(group(&members, now_ms, timeout_ms))
}

/// Groups sorted-set members into holders: `<id>_<n>` members of one
/// multi-semaphore holder count as one holder with n+1 permits.
fn group(members: &[(String, f64)], now_ms: i64, timeout_ms: i64) -> Vec<Holder> {
    let mut holders: Vec<Holder> = Vec::new();
    for (member, score) in members {
        let id = match member.rsplit_once('_') {
            Some((id, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => id,
            _ => member.as_str(),
        };
        // Scores are epoch milliseconds: exact in an f64.
        #[allow(clippy::cast_possible_truncation)]
        let ttl = (*score as i64).saturating_add(timeout_ms) - now_ms;
        match holders.iter_mut().find(|h| h.identifier == id) {
            Some(holder) => {
                holder.permits += 1;
                holder.ttl_ms = holder.ttl_ms.map(|t| t.min(ttl));
            }
            None => holders.push(Holder {
                identifier: id.to_owned(),
                permits: 1,
                ttl_ms: Some(ttl),
            }),
        }
    }
    holders
}

/// `ttl` for people: `8.4s`, `expired`, `no expiry`.
pub(crate) fn show_ttl(ttl_ms: Option<i64>) -> String {
    match ttl_ms {
        None => "no expiry".to_owned(),
        Some(ms) if ms <= 0 => "expired".to_owned(),
        Some(ms) => show(Duration::from_millis(ms.unsigned_abs())),
    }
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `redsem status`: prints the holders on every node; exit 0 when at least
/// one node answered, 69 when none did.
pub(crate) async fn status(args: &StatusArgs, urls: &[String]) -> u8 {
    let nodes: Vec<Node> = urls.iter().map(|u| Node::new(u)).collect();
    let key = &args.key;
    let limit = args.lock.limit;
    let reads = nodes
        .iter()
        .map(|node| holders(node, key, limit, args.lock.lock_timeout));
    let mut results = Vec::with_capacity(nodes.len());
    for read in reads {
        results.push(read.await);
    }
    let redis_key = redis_key(key, limit);
    let kind = match (limit, nodes.len() > 1) {
        (None, false) => "mutex",
        (Some(_), false) => "semaphore",
        (None, true) => "redlock-mutex",
        (Some(_), true) => "redlock-semaphore",
    };
    if args.json {
        let mut nodes_json = Vec::new();
        for (node, result) in nodes.iter().zip(&results) {
            let body = match result {
                Ok(holders) => {
                    let list: Vec<String> = holders
                        .iter()
                        .map(|h| {
                            format!(
                                "{{\"identifier\":{},\"permits\":{},\"ttl_ms\":{}}}",
                                json_str(&h.identifier),
                                h.permits,
                                h.ttl_ms.map_or("null".to_owned(), |t| t.to_string())
                            )
                        })
                        .collect();
                    format!("\"holders\":[{}]", list.join(","))
                }
                Err(e) => format!("\"error\":{}", json_str(&e.to_string())),
            };
            nodes_json.push(format!(
                "{{\"url\":{},{body}}}",
                json_str(&node.shown_url())
            ));
        }
        println!(
            "{{\"key\":{},\"redis_key\":{},\"kind\":\"{kind}\",\"limit\":{},\"nodes\":[{}]}}",
            json_str(key),
            json_str(&redis_key),
            limit.map_or("null".to_owned(), |l| l.to_string()),
            nodes_json.join(",")
        );
    } else {
        for (i, (node, result)) in nodes.iter().zip(&results).enumerate() {
            let indent = if nodes.len() > 1 {
                println!("node {} ({}):", i + 1, node.shown_url());
                "  "
            } else {
                ""
            };
            match result {
                Err(e) => println!("{indent}error: {e}"),
                Ok(holders) => {
                    let used: u32 = holders.iter().map(|h| h.permits).sum();
                    match limit {
                        None if holders.is_empty() => println!("{indent}{redis_key}: free"),
                        None => println!("{indent}{redis_key}: held"),
                        Some(limit) => {
                            println!("{indent}{redis_key}: {used} of {limit} slots held")
                        }
                    }
                    for h in holders {
                        let permits = if h.permits > 1 || limit.is_some() {
                            format!(
                                "  {} permit{}",
                                h.permits,
                                if h.permits == 1 { "" } else { "s" }
                            )
                        } else {
                            String::new()
                        };
                        println!(
                            "{indent}  {}{permits}  ttl {}",
                            h.identifier,
                            show_ttl(h.ttl_ms)
                        );
                    }
                }
            }
        }
    }
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if failed.len() == results.len() {
        for (node, e) in nodes.iter().zip(&failed) {
            eprintln!("redsem: cannot reach Redis at {}: {e}", node.shown_url());
        }
        return code::UNAVAILABLE;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_grouped_by_identifier() {
        let members = vec![
            ("a_0".to_owned(), 1_000.0),
            ("a_1".to_owned(), 1_000.0),
            ("b".to_owned(), 1_500.0),
            ("c_d".to_owned(), 1_200.0),
        ];
        let holders = group(&members, 2_000, 10_000);
        assert_eq!(
            holders,
            vec![
                Holder {
                    identifier: "a".into(),
                    permits: 2,
                    ttl_ms: Some(9_000)
                },
                Holder {
                    identifier: "b".into(),
                    permits: 1,
                    ttl_ms: Some(9_500)
                },
                Holder {
                    identifier: "c_d".into(),
                    permits: 1,
                    ttl_ms: Some(9_200)
                },
            ]
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn ttls_are_shown() {
        assert_eq!(show_ttl(None), "no expiry");
        assert_eq!(show_ttl(Some(-3)), "expired");
        assert_eq!(show_ttl(Some(1_500)), "1.5s");
    }
}
