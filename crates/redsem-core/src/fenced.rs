//! The resource side of fencing tokens: a value kept in Redis that refuses
//! writes from holders older than the newest it has seen.

use crate::backend::{Arg, RedisBackend, Reply};
use crate::error::{BackendError, BackendErrorKind};
use crate::keys::companion_key;
use crate::script::{FENCED_READ, FENCED_WRITE};

/// A value kept in Redis that accepts a write only with a fencing token at
/// least as new as the newest it has accepted (equal tokens are the same
/// holder writing again). A holder paused past its lock timeout
/// (a GC pause, a stopped VM) wakes up with an old token, and its late
/// write is refused instead of overwriting the next holder's work.
///
/// Stored as two string keys in one Cluster slot: the value at `key` and
/// the newest token at [`token_key`](Self::token_key). Each write is one
/// script call (one round trip).
///
/// ```
/// use redsem_core::{FencedResource, FencedWrite, Mutex};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// let report = FencedResource::new("report:latest");
/// let mutex = Mutex::new(redis.clone(), "report")?;
///
/// let old = mutex.acquire().await?;
/// let old_token = old.fencing_token();
/// old.release().await?; // (or: paused until its hold expired)
/// let new = mutex.acquire().await?;
/// assert_eq!(report.write(&redis, new.fencing_token(), "v2").await?, FencedWrite::Written);
///
/// // the old holder's late write is refused
/// let late = report.write(&redis, old_token, "v1").await?;
/// assert_eq!(late, FencedWrite::Stale { newest: new.fencing_token() });
/// assert_eq!(report.read(&redis).await?, Some((new.fencing_token(), "v2".to_owned())));
/// # new.release().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedResource {
    key: String,
    token_key: String,
}

/// What a [`FencedResource::write`] did.
///
/// ```
/// use redsem_core::FencedWrite;
/// assert_ne!(FencedWrite::Written, FencedWrite::Stale { newest: 7 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencedWrite {
    /// The value was written; its token is now the newest.
    Written,
    /// Refused: a newer holder has written with `newest`.
    Stale {
        /// The newest token the resource has accepted.
        newest: u64,
    },
}

impl FencedResource {
    /// The resource stored at `key` (any key; it is used as given, without
    /// a prefix).
    ///
    /// ```
    /// let report = redsem_core::FencedResource::new("report:latest");
    /// assert_eq!(report.key(), "report:latest");
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        let token_key = companion_key(&key, ":token");
        FencedResource { key, token_key }
    }

    /// The key holding the value.
    ///
    /// ```
    /// assert_eq!(redsem_core::FencedResource::new("a").key(), "a");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key holding the newest accepted token, next to [`key`](Self::key)
    /// in the same Cluster slot.
    ///
    /// ```
    /// let report = redsem_core::FencedResource::new("report");
    /// assert_eq!(report.token_key(), "{report}:token");
    /// ```
    pub fn token_key(&self) -> &str {
        &self.token_key
    }

    /// Writes `value` if `token` is at least the newest token accepted so
    /// far, atomically.
    ///
    /// ```
    /// use redsem_core::{FencedResource, FencedWrite};
    /// use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let counter = FencedResource::new("counter");
    /// assert_eq!(counter.write(&redis, 5, "a").await?, FencedWrite::Written);
    /// assert_eq!(counter.write(&redis, 5, "b").await?, FencedWrite::Written); // same holder
    /// assert_eq!(counter.write(&redis, 4, "c").await?, FencedWrite::Stale { newest: 5 });
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The backend's error when the call fails (the write may or may not
    /// have happened), or a [`BackendErrorKind::UnexpectedReply`] when a
    /// token is larger than `i64::MAX`.
    pub async fn write<B: RedisBackend + ?Sized>(
        &self,
        backend: &B,
        token: u64,
        value: &str,
    ) -> Result<FencedWrite, BackendError> {
        let token = i64::try_from(token).map_err(|_| {
            BackendError::new(
                BackendErrorKind::UnexpectedReply,
                format!("fencing token {token} is larger than Redis integers allow"),
            )
        })?;
        let keys = [self.key.as_str(), self.token_key.as_str()];
        let args = [Arg::Int(token), Arg::Str(value)];
        let reply = backend.run_script(&FENCED_WRITE, &keys, &args).await?;
        Ok(match reply.expect_i64(&FENCED_WRITE)? {
            1 => FencedWrite::Written,
            newest => FencedWrite::Stale {
                newest: newest.unsigned_abs(),
            },
        })
    }

    /// The newest accepted token and the value written with it, or `None`
    /// when nothing was written yet.
    ///
    /// ```
    /// use redsem_core::FencedResource;
    /// use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let report = FencedResource::new("report");
    /// assert_eq!(report.read(&redis).await?, None);
    /// report.write(&redis, 3, "done").await?;
    /// assert_eq!(report.read(&redis).await?, Some((3, "done".to_owned())));
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The backend's error when the call fails, or
    /// [`BackendErrorKind::UnexpectedReply`] when the keys hold something
    /// this type did not write.
    pub async fn read<B: RedisBackend + ?Sized>(
        &self,
        backend: &B,
    ) -> Result<Option<(u64, String)>, BackendError> {
        let keys = [self.key.as_str(), self.token_key.as_str()];
        let reply = backend.run_script(&FENCED_READ, &keys, &[]).await?;
        let unexpected = || {
            BackendError::new(
                BackendErrorKind::UnexpectedReply,
                format!("{} did not return a token and a value", FENCED_READ.name()),
            )
        };
        let Reply::Array(parts) = reply else {
            return Err(unexpected());
        };
        match parts.as_slice() {
            [] | [Reply::Nil, ..] => Ok(None),
            [token, Reply::Data(value)] => {
                let token = token
                    .as_i64()
                    .and_then(|t| u64::try_from(t).ok())
                    .ok_or_else(unexpected)?;
                Ok(Some((token, String::from_utf8_lossy(value).into_owned())))
            }
            _ => Err(unexpected()),
        }
    }
}
