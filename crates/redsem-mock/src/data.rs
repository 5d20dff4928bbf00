//! The keyspace: string keys and sorted sets with optional expiry, expired
//! lazily against the node clock, with the Redis commands the scripts use.

use std::collections::{BTreeSet, HashMap};

use redsem_core::{BackendError, BackendErrorKind};

/// The error Redis gives for a command on a key of the other type.
pub(crate) fn wrong_type() -> BackendError {
    BackendError::new(
        BackendErrorKind::Server,
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    )
}

fn invalid_expire(command: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Server,
        format!("ERR invalid expire time in '{command}' command"),
    )
}

/// A sorted set: member -> integer score, ordered by (score, member) like
/// Redis orders a ZSET.
#[derive(Debug, Default)]
pub(crate) struct ZSet {
    scores: HashMap<String, i64>,
    ordered: BTreeSet<(i64, String)>,
}

impl ZSet {
    /// ZADD of one member: adds it or updates its score; `true` when new.
    pub(crate) fn add(&mut self, member: &str, score: i64) -> bool {
        match self.scores.insert(member.to_owned(), score) {
            Some(old) => {
                self.ordered.remove(&(old, member.to_owned()));
                self.ordered.insert((score, member.to_owned()));
                false
            }
            None => {
                self.ordered.insert((score, member.to_owned()));
                true
            }
        }
    }

    /// ZSCORE.
    pub(crate) fn score(&self, member: &str) -> Option<i64> {
        self.scores.get(member).copied()
    }

    /// ZREM of one member; `true` when it was there.
    pub(crate) fn remove(&mut self, member: &str) -> bool {
        match self.scores.remove(member) {
            Some(score) => self.ordered.remove(&(score, member.to_owned())),
            None => false,
        }
    }

    /// ZREMRANGEBYSCORE -inf `max` (inclusive); the number removed.
    pub(crate) fn remove_up_to(&mut self, max: i64) -> usize {
        let kept = match max.checked_add(1) {
            Some(bound) => self.ordered.split_off(&(bound, String::new())),
            None => BTreeSet::new(),
        };
        let removed = std::mem::replace(&mut self.ordered, kept);
        for (_, member) in &removed {
            self.scores.remove(member);
        }
        removed.len()
    }

    /// ZCARD.
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// Members with scores, ordered like ZRANGE.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.ordered
            .iter()
            .map(|(score, member)| (member.as_str(), *score))
    }
}

/// A key's value.
#[derive(Debug)]
pub(crate) enum Value {
    Str(String),
    ZSet(ZSet),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    /// Epoch ms at which the key stops existing.
    expires_at: Option<i64>,
}

/// All keys of one node. Every accessor takes the current time and removes
/// the key first when it has expired (Redis's lazy expiry): a key whose
/// expiry time has been reached (`now >= expires_at`) is gone.
#[derive(Debug, Default)]
pub(crate) struct Keyspace {
    entries: HashMap<String, Entry>,
}

impl Keyspace {
    fn live(&mut self, key: &str, now: i64) -> Option<&mut Entry> {
        let expired = self
            .entries
            .get(key)?
            .expires_at
            .is_some_and(|at| now >= at);
        if expired {
            self.entries.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    /// GET: the string value, or a WRONGTYPE error for a sorted set.
    pub(crate) fn get(&mut self, key: &str, now: i64) -> Result<Option<&str>, BackendError> {
        match self.live(key, now) {
            None => Ok(None),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => Ok(Some(s.as_str())),
            Some(Entry {
                value: Value::ZSet(_),
                ..
            }) => Err(wrong_type()),
        }
    }

    /// SET with an optional absolute expiry; replaces any value and TTL.
    pub(crate) fn set(&mut self, key: &str, value: &str, expires_at: Option<i64>) {
        let entry = Entry {
            value: Value::Str(value.to_owned()),
            expires_at,
        };
        self.entries.insert(key.to_owned(), entry);
    }

    /// `SET key value PX ttl_ms NX`: `true` when set.
    pub(crate) fn set_nx_px(
        &mut self,
        key: &str,
        value: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, BackendError> {
        if ttl_ms <= 0 {
            return Err(invalid_expire("set"));
        }
        let expires_at = now
            .checked_add(ttl_ms)
            .ok_or_else(|| invalid_expire("set"))?;
        if self.live(key, now).is_some() {
            return Ok(false);
        }
        self.set(key, value, Some(expires_at));
        Ok(true)
    }

    /// DEL; `true` when the key existed.
    pub(crate) fn del(&mut self, key: &str, now: i64) -> bool {
        self.live(key, now).is_some() && self.entries.remove(key).is_some()
    }

    /// EXISTS.
    pub(crate) fn exists(&mut self, key: &str, now: i64) -> bool {
        self.live(key, now).is_some()
    }

    /// PEXPIRE: `false` when the key does not exist; a TTL of zero or less
    /// deletes the key (and still answers `true`), as in Redis.
    pub(crate) fn pexpire(
        &mut self,
        key: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, BackendError> {
        let expires_at = now
            .checked_add(ttl_ms)
            .ok_or_else(|| invalid_expire("pexpire"))?;
        let Some(entry) = self.live(key, now) else {
            return Ok(false);
        };
        if ttl_ms <= 0 {
            self.entries.remove(key);
        } else {
            entry.expires_at = Some(expires_at);
        }
        Ok(true)
    }

    /// Remaining time to live in ms: `None` when the key does not exist or
    /// has no expiry.
    pub(crate) fn ttl_ms(&mut self, key: &str, now: i64) -> Option<i64> {
        let at = self.live(key, now)?.expires_at?;
        Some(at.saturating_sub(now))
    }

    /// The sorted set at `key`: `None` when missing, WRONGTYPE for a string.
    pub(crate) fn zset(&mut self, key: &str, now: i64) -> Result<Option<&mut ZSet>, BackendError> {
        match self.live(key, now) {
            None => Ok(None),
            Some(Entry {
                value: Value::ZSet(z),
                ..
            }) => Ok(Some(z)),
            Some(Entry {
                value: Value::Str(_),
                ..
            }) => Err(wrong_type()),
        }
    }

    /// The sorted set at `key`, created empty (without expiry) when missing;
    /// WRONGTYPE for a string. Callers must add a member or call
    /// [`Keyspace::drop_if_empty`].
    pub(crate) fn zset_or_create(
        &mut self,
        key: &str,
        now: i64,
    ) -> Result<&mut ZSet, BackendError> {
        if self.live(key, now).is_none() {
            let entry = Entry {
                value: Value::ZSet(ZSet::default()),
                expires_at: None,
            };
            self.entries.insert(key.to_owned(), entry);
        }
        match self.entries.get_mut(key) {
            Some(Entry {
                value: Value::ZSet(z),
                ..
            }) => Ok(z),
            _ => Err(wrong_type()),
        }
    }

    /// Removes `key` when it holds an empty sorted set: Redis never keeps an
    /// empty ZSET.
    pub(crate) fn drop_if_empty(&mut self, key: &str) {
        if let Some(Entry {
            value: Value::ZSet(z),
            ..
        }) = self.entries.get(key)
        {
            if z.len() == 0 {
                self.entries.remove(key);
            }
        }
    }

    /// ZREMRANGEBYSCORE key -inf `max`; the number removed.
    pub(crate) fn zrem_up_to(
        &mut self,
        key: &str,
        max: i64,
        now: i64,
    ) -> Result<usize, BackendError> {
        let removed = match self.zset(key, now)? {
            Some(z) => z.remove_up_to(max),
            None => 0,
        };
        self.drop_if_empty(key);
        Ok(removed)
    }

    /// ZREM of several members; the number removed.
    pub(crate) fn zrem<'m>(
        &mut self,
        key: &str,
        members: impl IntoIterator<Item = &'m str>,
        now: i64,
    ) -> Result<usize, BackendError> {
        let removed = match self.zset(key, now)? {
            Some(z) => members.into_iter().filter(|m| z.remove(m)).count(),
            None => 0,
        };
        self.drop_if_empty(key);
        Ok(removed)
    }

    /// The live keys, sorted.
    pub(crate) fn keys(&mut self, now: i64) -> Vec<String> {
        self.entries
            .retain(|_, e| e.expires_at.is_none_or(|at| now < at));
        let mut keys: Vec<String> = self.entries.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Number of stored keys, expired ones not yet removed included.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// FLUSHALL.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zset_orders_by_score_then_member_and_updates_scores() {
        let mut z = ZSet::default();
        assert!(z.add("b", 2));
        assert!(z.add("a", 2));
        assert!(z.add("c", 1));
        assert!(!z.add("c", 3));
        let order: Vec<_> = z.iter().collect();
        assert_eq!(order, [("a", 2), ("b", 2), ("c", 3)]);
        assert_eq!(z.remove_up_to(2), 2);
        assert_eq!(z.len(), 1);
        assert_eq!(z.remove_up_to(i64::MAX), 1);
        assert_eq!(z.len(), 0);
    }

    #[test]
    fn keys_expire_when_their_time_is_reached() {
        let mut ks = Keyspace::default();
        assert_eq!(ks.set_nx_px("k", "v", 100, 1_000).ok(), Some(true));
        assert_eq!(ks.set_nx_px("k", "w", 100, 1_099).ok(), Some(false));
        assert_eq!(ks.ttl_ms("k", 1_099), Some(1));
        assert!(!ks.exists("k", 1_100));
        assert_eq!(ks.len(), 0, "expired key removed on access");
    }

    #[test]
    fn wrong_type_errors() {
        let mut ks = Keyspace::default();
        ks.set("s", "v", None);
        assert!(ks.zset("s", 0).is_err());
        assert!(ks.zset_or_create("s", 0).is_err());
        ks.zset_or_create("z", 0).map(|z| z.add("m", 1)).ok();
        assert!(ks.get("z", 0).is_err());
    }

    #[test]
    fn pexpire_like_redis() {
        let mut ks = Keyspace::default();
        assert_eq!(ks.pexpire("missing", 10, 0).ok(), Some(false));
        ks.set("k", "v", None);
        assert_eq!(ks.ttl_ms("k", 0), None);
        assert_eq!(ks.pexpire("k", 10, 0).ok(), Some(true));
        assert_eq!(ks.ttl_ms("k", 0), Some(10));
        assert_eq!(ks.pexpire("k", 0, 0).ok(), Some(true));
        assert!(!ks.exists("k", 0));
        ks.set("k", "v", None);
        assert!(ks.pexpire("k", i64::MAX, 1).is_err());
    }
}
