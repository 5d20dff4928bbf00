//! Sync inspection and setup of a node's keys.

use std::time::Duration;

use crate::clock::duration_ms_ceil;
use crate::data::Value;
use crate::zset::Score;
use crate::MockBackend;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Inspection and setup. These are the test's direct view of the node: they
/// see the data as a script would at the node's current time (expired keys
/// are gone), ignore injected faults (they work while the node is down or
/// hung) and are not counted in [`calls`](MockBackend::calls).
impl MockBackend {
    /// The value of a string key; `None` when the key does not exist or
    /// holds a sorted set.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// let redis = MockBackend::new();
    /// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// assert_eq!(redis.get("mutex:jobs").as_deref(), Some(guard.identifier()));
    /// assert_eq!(redis.get("missing"), None);
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn get(&self, key: &str) -> Option<String> {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        state
            .data
            .string(key.as_bytes(), now)
            .ok()
            .flatten()
            .map(text)
    }

    /// `SET key value`: stores a string without expiry, replacing any value
    /// and TTL.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// let redis = MockBackend::new();
    /// redis.set("mutex:jobs", "someone-else"); // the lock is taken
    /// assert!(Mutex::new(redis, "jobs")?.try_acquire().await?.is_none());
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn set(&self, key: &str, value: &str) {
        let value = Value::Str(value.as_bytes().to_vec());
        self.node.lock().data.set(key.as_bytes(), value, None);
    }

    /// `SET key value PX ttl`: stores a string that expires after `ttl`
    /// (rounded up to whole milliseconds; a zero `ttl` stores a key that has
    /// already expired), replacing any value and TTL.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// use std::time::Duration;
    /// let redis = MockBackend::new();
    /// redis.set_with_ttl("k", "v", Duration::from_secs(10));
    /// assert_eq!(redis.ttl("k"), Some(Duration::from_secs(10)));
    /// ```
    pub fn set_with_ttl(&self, key: &str, value: &str, ttl: Duration) {
        let mut state = self.node.lock();
        let expires_at = state.clock.now_ms().saturating_add(duration_ms_ceil(ttl));
        let value = Value::Str(value.as_bytes().to_vec());
        state.data.set(key.as_bytes(), value, Some(expires_at));
    }

    /// `DEL key`: `true` when the key existed.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.set("k", "v");
    /// assert!(redis.del("k"));
    /// assert!(!redis.del("k"));
    /// ```
    pub fn del(&self, key: &str) -> bool {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        state.data.del(key.as_bytes(), now)
    }

    /// `EXISTS key`, for a key of either type.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.zadd("z", 1, "m");
    /// assert!(redis.exists("z") && !redis.exists("k"));
    /// ```
    pub fn exists(&self, key: &str) -> bool {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        state.data.exists(key.as_bytes(), now)
    }

    /// Every key that exists, sorted.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.set("b", "2");
    /// redis.set("a", "1");
    /// assert_eq!(redis.keys(), ["a", "b"]);
    /// ```
    pub fn keys(&self) -> Vec<String> {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        state.data.keys(now).iter().map(|k| text(k)).collect()
    }

    /// The time `key` has left to live (`PTTL`), by the node's clock;
    /// `None` when the key does not exist or has no expiry.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// use std::time::Duration;
    /// let redis = MockBackend::new();
    /// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// let ttl = redis.ttl("mutex:jobs").unwrap_or_default(); // 10 s, less the time since
    /// assert!(ttl > Duration::from_secs(9) && ttl <= Duration::from_secs(10));
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn ttl(&self, key: &str) -> Option<Duration> {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        let at = state.data.expiry(key.as_bytes(), now)??;
        Some(Duration::from_millis(
            u64::try_from(at.saturating_sub(now)).unwrap_or(0),
        ))
    }

    /// `ZADD key score_ms member`: adds the member or updates its score;
    /// `true` when it is new. A string at `key` is replaced by a new sorted
    /// set (a setup shortcut: Redis would answer `WRONGTYPE`). The key's TTL
    /// is kept.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// assert!(redis.zadd("semaphore:pool", 1_000, "holder-1"));
    /// assert!(!redis.zadd("semaphore:pool", 2_000, "holder-1")); // updated
    /// assert_eq!(redis.zrange_with_scores("semaphore:pool"), [("holder-1".to_string(), 2_000)]);
    /// ```
    pub fn zadd(&self, key: &str, score_ms: i64, member: &str) -> bool {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        let key = key.as_bytes();
        if state.data.zset(key, now).is_err() {
            state.data.del(key, now);
        }
        #[allow(clippy::cast_precision_loss)] // exact up to 2^53 ms
        let score = Score::new(score_ms as f64);
        match (state.data.zset_or_create(key, now), score) {
            (Ok(z), Some(score)) => z.add(member.as_bytes(), score),
            _ => false, // not reached: the string was deleted above
        }
    }

    /// The members of the sorted set at `key` ordered by score, then by
    /// member (`ZRANGE key 0 -1`); empty when the key does not exist or
    /// holds a string.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.zadd("z", 2, "b");
    /// redis.zadd("z", 1, "a");
    /// assert_eq!(redis.zrange("z"), ["a", "b"]);
    /// ```
    pub fn zrange(&self, key: &str) -> Vec<String> {
        self.zrange_with_scores(key)
            .into_iter()
            .map(|(member, _)| member)
            .collect()
    }

    /// Like [`zrange`](Self::zrange), with each member's score in ms
    /// (`ZRANGE key 0 -1 WITHSCORES`; a score with a fraction, which only a
    /// script can set, is truncated).
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.zadd("z", 5, "m");
    /// assert_eq!(redis.zrange_with_scores("z"), [("m".to_string(), 5)]);
    /// ```
    pub fn zrange_with_scores(&self, key: &str) -> Vec<(String, i64)> {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        match state.data.zset(key.as_bytes(), now) {
            #[allow(clippy::cast_possible_truncation)] // documented
            Ok(Some(z)) => z.iter().map(|(m, s)| (text(m), s as i64)).collect(),
            _ => Vec::new(),
        }
    }

    /// `ZCARD key`: 0 when the key does not exist or holds a string.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.zadd("z", 1, "a");
    /// redis.zadd("z", 2, "b");
    /// assert_eq!((redis.zcard("z"), redis.zcard("missing")), (2, 0));
    /// ```
    pub fn zcard(&self, key: &str) -> usize {
        let mut state = self.node.lock();
        let now = state.clock.now_ms();
        match state.data.zset(key.as_bytes(), now) {
            Ok(Some(z)) => z.len(),
            _ => 0,
        }
    }

    /// `FLUSHALL`: deletes every key. The script cache is kept (see
    /// [`flush_scripts`](MockBackend::flush_scripts)).
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.set("k", "v");
    /// redis.flush_all();
    /// assert!(redis.keys().is_empty());
    /// ```
    pub fn flush_all(&self) {
        self.node.lock().data.clear();
    }
}
