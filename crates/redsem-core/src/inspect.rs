//! [`Inspection`]: who holds a lock, read in one script call per node.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backend::{RedisBackend, Reply};
use crate::error::BackendError;
use crate::script::INSPECT;

/// One holder of a lock as one node sees it, in [`NodeInspection::holders`].
///
/// ```
/// use redsem_core::{Holder, Mutex};
/// use redsem_mock::MockBackend;
/// use std::time::Duration;
/// # futures::executor::block_on(async {
/// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
/// let guard = mutex.acquire().await?;
/// let seen = mutex.inspect().await?;
/// let holder: &Holder = &seen.nodes[0].as_ref().unwrap().holders[0];
/// assert_eq!(holder.identifier, guard.identifier());
/// assert_eq!(holder.permits, 1);
/// assert!(holder.expires_in <= Duration::from_secs(10));
/// # guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's identifier (for a multi-semaphore holder, without the
    /// `_<n>` of its members).
    pub identifier: String,
    /// Slots it takes: 1 for a mutex or semaphore holder, its permits for a
    /// multi-semaphore holder.
    pub permits: u32,
    /// How long until its hold expires without a refresh: the key's TTL
    /// for a mutex; for a semaphore member, its score plus the inspecting
    /// lock's lock timeout minus the server's time.
    pub expires_in: Duration,
}

/// What one node holds for a lock key, in [`Inspection::nodes`].
///
/// ```
/// use redsem_core::{NodeInspection, Semaphore};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let pool = Semaphore::new(MockBackend::new(), "pool", 3)?;
/// let (a, b) = (pool.acquire().await?, pool.acquire().await?);
/// let seen = pool.inspect().await?;
/// let node: &NodeInspection = seen.nodes[0].as_ref().unwrap();
/// assert_eq!(node.holders.len(), 2);
/// assert_eq!(node.foreign, None); // the key holds lock data
/// # a.release().await?;
/// # b.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInspection {
    /// The holders, longest-lived first.
    pub holders: Vec<Holder>,
    /// Set when the key holds something that is not lock data (its type).
    pub foreign: Option<String>,
}

/// Who holds a lock: what [`Lock::inspect`](crate::Lock::inspect) returns.
///
/// ```
/// use redsem_core::{Lock, MultiSemaphore};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let gpu = MultiSemaphore::new(MockBackend::new(), "gpu", 8, 3)?;
/// let guard = gpu.acquire().await?;
/// let seen = gpu.inspect().await?;
/// let holders = &seen.nodes[0].as_ref().unwrap().holders;
/// assert_eq!(holders.len(), 1);
/// assert_eq!(holders[0].identifier, guard.identifier());
/// assert_eq!(holders[0].permits, 3);
/// guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The Redis key, with its prefix.
    pub key: String,
    /// Per node (one for the single-node kinds), in node order: what it
    /// holds, or why it could not be read.
    pub nodes: Vec<Result<NodeInspection, BackendError>>,
}

/// Reads `key` on `node`; `lock_timeout_ms` dates semaphore members.
pub(crate) async fn inspect_node<B: RedisBackend + ?Sized>(
    node: &B,
    key: &str,
    lock_timeout_ms: u64,
) -> Result<NodeInspection, BackendError> {
    let reply = node.run_script(&INSPECT, &[key], &[]).await?;
    parse(&reply, lock_timeout_ms).ok_or_else(|| {
        BackendError::new(
            crate::BackendErrorKind::UnexpectedReply,
            format!("script inspect returned {reply:?}"),
        )
    })
}

fn text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Data(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Reply::Status(s) => Some(s.clone()),
        _ => None,
    }
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap_or(0))
}

fn parse(reply: &Reply, lock_timeout_ms: u64) -> Option<NodeInspection> {
    let Reply::Array(parts) = reply else {
        return None;
    };
    let [kind, now, pttl, data] = parts.as_slice() else {
        return None;
    };
    let kind = text(kind)?;
    let (now, pttl) = (now.as_i64()?, pttl.as_i64()?);
    let mut holders = Vec::new();
    let mut foreign = None;
    match kind.as_str() {
        "none" => {}
        "string" => holders.push(Holder {
            identifier: text(data)?,
            permits: 1,
            expires_in: ms(pttl),
        }),
        "zset" => {
            let Reply::Array(flat) = data else {
                return None;
            };
            // `<id>_<n>` members are one multi-semaphore holder's permits.
            let mut by_holder: BTreeMap<String, (u32, i64)> = BTreeMap::new();
            for pair in flat.chunks(2) {
                let [member, score] = pair else { return None };
                let member = text(member)?;
                let score = text(score)?.parse::<f64>().ok()? as i64;
                let holder = match member.rsplit_once('_') {
                    Some((id, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        id.to_owned()
                    }
                    _ => member,
                };
                let entry = by_holder.entry(holder).or_insert((0, score));
                entry.0 += 1;
                entry.1 = entry.1.min(score);
            }
            let ttl = i64::try_from(lock_timeout_ms).unwrap_or(i64::MAX);
            holders = by_holder
                .into_iter()
                .map(|(identifier, (permits, score))| Holder {
                    identifier,
                    permits,
                    expires_in: ms(score.saturating_add(ttl).saturating_sub(now)),
                })
                .collect();
        }
        other => foreign = Some(other.to_owned()),
    }
    holders.sort_by_key(|h| std::cmp::Reverse(h.expires_in));
    Some(NodeInspection { holders, foreign })
}
