//! The keyspace: binary-safe string keys holding strings or sorted sets,
//! each with an optional expiry, expired lazily against the node clock.

use std::collections::HashMap;

use crate::zset::ZSet;

/// A key holds the other type than the command needs (Redis's WRONGTYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongType;

impl WrongType {
    /// The error reply Redis gives.
    pub(crate) const MESSAGE: &'static str =
        "WRONGTYPE Operation against a key holding the wrong kind of value";
}

/// A key's value.
#[derive(Debug)]
pub(crate) enum Value {
    Str(Vec<u8>),
    ZSet(ZSet),
}

impl Value {
    /// The name `TYPE` answers.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::ZSet(_) => "zset",
        }
    }
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
    entries: HashMap<Vec<u8>, Entry>,
    /// Channels published on by the running command or script, for the
    /// node to deliver when it is done (not data: never persisted).
    pub(crate) outbox: Vec<Vec<u8>>,
}

impl Keyspace {
    fn live(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
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

    /// The value at `key`, if the key exists.
    pub(crate) fn value(&mut self, key: &[u8], now: i64) -> Option<&mut Value> {
        self.live(key, now).map(|e| &mut e.value)
    }

    /// The string at `key`: `None` when missing, WRONGTYPE for a sorted set.
    pub(crate) fn string(&mut self, key: &[u8], now: i64) -> Result<Option<&[u8]>, WrongType> {
        match self.value(key, now) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.as_slice())),
            Some(Value::ZSet(_)) => Err(WrongType),
        }
    }

    /// The sorted set at `key`: `None` when missing, WRONGTYPE for a string.
    pub(crate) fn zset(&mut self, key: &[u8], now: i64) -> Result<Option<&mut ZSet>, WrongType> {
        match self.value(key, now) {
            None => Ok(None),
            Some(Value::ZSet(z)) => Ok(Some(z)),
            Some(Value::Str(_)) => Err(WrongType),
        }
    }

    /// The sorted set at `key`, created empty (without expiry) when missing;
    /// WRONGTYPE for a string. Callers add a member or call
    /// [`Keyspace::drop_if_empty`].
    pub(crate) fn zset_or_create(&mut self, key: &[u8], now: i64) -> Result<&mut ZSet, WrongType> {
        if self.live(key, now).is_none() {
            let entry = Entry {
                value: Value::ZSet(ZSet::default()),
                expires_at: None,
            };
            self.entries.insert(key.to_vec(), entry);
        }
        match self.entries.get_mut(key).map(|e| &mut e.value) {
            Some(Value::ZSet(z)) => Ok(z),
            _ => Err(WrongType),
        }
    }

    /// Removes `key` when it holds an empty sorted set: Redis never keeps an
    /// empty ZSET.
    pub(crate) fn drop_if_empty(&mut self, key: &[u8]) {
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

    /// Stores `value` at `key` with an absolute expiry, replacing any value
    /// and TTL.
    pub(crate) fn set(&mut self, key: &[u8], value: Value, expires_at: Option<i64>) {
        let entry = Entry { value, expires_at };
        self.entries.insert(key.to_vec(), entry);
    }

    /// Deletes `key`; `true` when it existed.
    pub(crate) fn del(&mut self, key: &[u8], now: i64) -> bool {
        self.live(key, now).is_some() && self.entries.remove(key).is_some()
    }

    /// Whether `key` exists.
    pub(crate) fn exists(&mut self, key: &[u8], now: i64) -> bool {
        self.live(key, now).is_some()
    }

    /// The expiry of `key`: `None` when the key does not exist, `Some(None)`
    /// when it has none.
    pub(crate) fn expiry(&mut self, key: &[u8], now: i64) -> Option<Option<i64>> {
        self.live(key, now).map(|e| e.expires_at)
    }

    /// Sets or clears the expiry of an existing `key`; `false` when missing.
    pub(crate) fn set_expiry(&mut self, key: &[u8], expires_at: Option<i64>, now: i64) -> bool {
        match self.live(key, now) {
            Some(entry) => {
                entry.expires_at = expires_at;
                true
            }
            None => false,
        }
    }

    /// The live keys, sorted.
    pub(crate) fn keys(&mut self, now: i64) -> Vec<Vec<u8>> {
        self.entries
            .retain(|_, e| e.expires_at.is_none_or(|at| now < at));
        let mut keys: Vec<Vec<u8>> = self.entries.keys().cloned().collect();
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
    use crate::zset::Score;

    fn str_value(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
    }

    #[test]
    fn keys_expire_when_their_time_is_reached() {
        let mut ks = Keyspace::default();
        ks.set(b"k", str_value("v"), Some(1_100));
        assert_eq!(ks.expiry(b"k", 1_099), Some(Some(1_100)));
        assert_eq!(ks.string(b"k", 1_099), Ok(Some(&b"v"[..])));
        assert!(!ks.exists(b"k", 1_100));
        assert_eq!(ks.len(), 0, "expired key removed on access");
    }

    #[test]
    fn wrong_type_errors() {
        let mut ks = Keyspace::default();
        ks.set(b"s", str_value("v"), None);
        assert_eq!(ks.zset(b"s", 0).err(), Some(WrongType));
        assert!(ks.zset_or_create(b"s", 0).is_err());
        let z = ks.zset_or_create(b"z", 0).unwrap();
        z.add(b"m", Score::new(1.0).unwrap());
        assert_eq!(ks.string(b"z", 0), Err(WrongType));
        assert_eq!(ks.value(b"z", 0).map(|v| v.type_name()), Some("zset"));
    }

    #[test]
    fn empty_sorted_sets_are_dropped() {
        let mut ks = Keyspace::default();
        ks.zset_or_create(b"z", 0).unwrap();
        ks.drop_if_empty(b"z");
        assert!(!ks.exists(b"z", 0));
    }

    #[test]
    fn expiry_can_be_set_and_cleared() {
        let mut ks = Keyspace::default();
        assert!(!ks.set_expiry(b"missing", Some(10), 0));
        ks.set(b"k", str_value("v"), None);
        assert_eq!(ks.expiry(b"k", 0), Some(None));
        assert!(ks.set_expiry(b"k", Some(10), 0));
        assert_eq!(ks.expiry(b"k", 0), Some(Some(10)));
        assert!(ks.set_expiry(b"k", None, 0));
        assert_eq!(ks.expiry(b"k", 100), Some(None));
        assert_eq!(ks.keys(100), [b"k".to_vec()]);
        assert!(ks.del(b"k", 100));
        assert!(!ks.del(b"k", 100));
    }
}
