//! The Redis side of each lock kind on one node: which script or command,
//! which arguments, how to read the reply. Single-node locks run these on
//! their backend; Redlock runs them on every node.

use std::fmt;

use async_trait::async_trait;

use crate::backend::{Arg, RedisBackend, Reply};
use crate::error::{BackendError, LockKind};
use crate::keys::companion_key;
use crate::script::{
    FENCE, KEY_TYPE, MUTEX_FENCED_ACQUIRE, MUTEX_REFRESH, MUTEX_RELEASE, SEMAPHORE_ACQUIRE,
    SEMAPHORE_REFRESH, SEMAPHORE_RELEASE,
};

/// Suffix of the fencing counter next to a lock key (same Cluster slot).
pub(crate) const FENCE_SUFFIX: &str = ":fence";

/// What the `fence` script does with a hold's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FenceMode {
    /// Counter to max(counter + 1, target): a new token for a hold taken
    /// over from elsewhere.
    Issue,
    /// Counter to exactly `target`, only if lower: Redlock's confirmation
    /// that no other holder got that token on this node.
    Raise,
}

/// One lock kind's commands against one node.
#[async_trait]
pub(crate) trait Commands: Send + Sync + fmt::Debug + 'static {
    /// The single-node kind these commands implement.
    fn kind(&self) -> LockKind;

    /// The Redis key with its prefix.
    fn key(&self) -> &str;

    /// The fencing token (>= 1) when acquired, 0 when busy. The token is
    /// the key's counter raised to max(counter + 1, `floor`).
    async fn acquire<B>(
        &self,
        node: &B,
        id: &str,
        ttl_ms: u64,
        floor: u64,
    ) -> Result<u64, BackendError>
    where
        B: RedisBackend + ?Sized;

    /// The fencing counter's key.
    fn fence_key(&self) -> &str;

    /// The member (or value) that shows `id` still holds the key.
    fn fence_member(&self, id: &str) -> String {
        id.to_owned()
    }

    /// Runs the `fence` script for `id`'s hold: the token (> 0), 0 when the
    /// hold is gone, or minus the counter when a raise found it at or past
    /// `target`.
    async fn fence<B>(
        &self,
        node: &B,
        id: &str,
        target: u64,
        mode: FenceMode,
    ) -> Result<i64, BackendError>
    where
        B: RedisBackend + ?Sized,
    {
        let mode = match mode {
            FenceMode::Issue => "issue",
            FenceMode::Raise => "raise",
        };
        let member = self.fence_member(id);
        let args = [Arg::Str(&member), token_arg(target), Arg::Str(mode)];
        let keys = [self.key(), self.fence_key()];
        let reply = node.run_script(&FENCE, &keys, &args).await?;
        reply.expect_i64(&FENCE)
    }

    /// `true` when the hold was still there and is extended.
    async fn refresh<B>(&self, node: &B, id: &str, ttl_ms: u64) -> Result<bool, BackendError>
    where
        B: RedisBackend + ?Sized;

    /// `true` when the whole hold was there and is removed.
    async fn release<B>(&self, node: &B, id: &str) -> Result<bool, BackendError>
    where
        B: RedisBackend + ?Sized;

    /// What the key holds if it is not this kind's data (another program's
    /// hash at a mutex key reads as "busy" forever): its type name.
    async fn foreign_data<B>(&self, _node: &B) -> Option<String>
    where
        B: RedisBackend + ?Sized,
    {
        None
    }
}

/// The publish command a script announces a freed lock with, when the
/// node offers notifications; absent otherwise (no subscriber to wake).
fn publish_arg<B: RedisBackend + ?Sized>(node: &B) -> Option<Arg<'static>> {
    let channels = node.notifications()?.channels();
    Some(Arg::Str(channels.publish_command()))
}

/// `args` followed by the publish command, if any.
fn with_publish<'a, B: RedisBackend + ?Sized>(node: &B, args: &[Arg<'a>]) -> Vec<Arg<'a>> {
    let mut all = args.to_vec();
    all.extend(publish_arg(node));
    all
}

/// A token or floor; tokens stay far below `i64::MAX` (Lua counts exactly
/// to 2^53).
fn token_arg(token: u64) -> Arg<'static> {
    Arg::Int(i64::try_from(token).unwrap_or(i64::MAX))
}

/// A script's token reply: negative and zero replies are "no token".
fn token(reply: i64) -> u64 {
    u64::try_from(reply).unwrap_or(0)
}

fn ttl_arg(ttl_ms: u64) -> Arg<'static> {
    // Options cap the lock timeout at 2^62 ms, so this never saturates.
    Arg::Int(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
}

/// Mutex: a string key holding the identifier (`SET NX PX`).
#[derive(Debug)]
pub(crate) struct MutexCommands {
    pub(crate) key: String,
    fence_key: String,
    /// Acquires raise the fencing counter (else a plain `SET NX PX`).
    fenced: bool,
}

impl MutexCommands {
    pub(crate) fn new(key: String) -> Self {
        let fence_key = companion_key(&key, FENCE_SUFFIX);
        MutexCommands {
            key,
            fence_key,
            fenced: true,
        }
    }

    /// With `false`, acquires take no fencing token (and answer 1).
    pub(crate) fn fencing(mut self, fenced: bool) -> Self {
        self.fenced = fenced;
        self
    }
}

#[async_trait]
impl Commands for MutexCommands {
    fn kind(&self) -> LockKind {
        LockKind::Mutex
    }

    fn key(&self) -> &str {
        &self.key
    }

    async fn acquire<B>(
        &self,
        node: &B,
        id: &str,
        ttl_ms: u64,
        floor: u64,
    ) -> Result<u64, BackendError>
    where
        B: RedisBackend + ?Sized,
    {
        if !self.fenced {
            return Ok(u64::from(node.set_nx_px(&self.key, id, ttl_ms).await?));
        }
        let args = [Arg::Str(id), ttl_arg(ttl_ms), token_arg(floor)];
        let keys = [self.key.as_str(), self.fence_key.as_str()];
        let reply = node.run_script(&MUTEX_FENCED_ACQUIRE, &keys, &args).await?;
        Ok(token(reply.expect_i64(&MUTEX_FENCED_ACQUIRE)?))
    }

    fn fence_key(&self) -> &str {
        &self.fence_key
    }

    async fn refresh<B>(&self, node: &B, id: &str, ttl_ms: u64) -> Result<bool, BackendError>
    where
        B: RedisBackend + ?Sized,
    {
        let args = with_publish(node, &[Arg::Str(id), ttl_arg(ttl_ms)]);
        let reply = node.run_script(&MUTEX_REFRESH, &[&self.key], &args).await?;
        Ok(reply.expect_i64(&MUTEX_REFRESH)? == 1)
    }

    async fn release<B>(&self, node: &B, id: &str) -> Result<bool, BackendError>
    where
        B: RedisBackend + ?Sized,
    {
        let args = with_publish(node, &[Arg::Str(id)]);
        let reply = node.run_script(&MUTEX_RELEASE, &[&self.key], &args).await?;
        Ok(reply.expect_i64(&MUTEX_RELEASE)? == 1)
    }

    async fn foreign_data<B>(&self, node: &B) -> Option<String>
    where
        B: RedisBackend + ?Sized,
    {
        // Semaphore scripts fail with WRONGTYPE by themselves; SET NX does not.
        let reply = node.run_script(&KEY_TYPE, &[&self.key], &[]).await.ok()?;
        let name = match reply {
            Reply::Data(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Reply::Status(s) => s,
            _ => return None,
        };
        (name != "string" && name != "none").then_some(name)
    }
}

/// Semaphore (`permits == 0`: one member `<id>`) and MultiSemaphore
/// (`permits >= 1`: members `<id>_0..`): a sorted set scored by acquire time.
#[derive(Debug)]
pub(crate) struct SemaphoreCommands {
    pub(crate) key: String,
    fence_key: String,
    pub(crate) limit: u32,
    /// 0 for the plain Semaphore.
    pub(crate) permits: u32,
    /// Acquires raise the fencing counter.
    fenced: bool,
}

impl SemaphoreCommands {
    pub(crate) fn new(key: String, limit: u32, permits: u32) -> Self {
        let fence_key = companion_key(&key, FENCE_SUFFIX);
        SemaphoreCommands {
            key,
            fence_key,
            limit,
            permits,
            fenced: true,
        }
    }

    /// With `false`, acquires take no fencing token (and answer 1).
    pub(crate) fn fencing(mut self, fenced: bool) -> Self {
        self.fenced = fenced;
        self
    }

    /// Members a full hold has.
    fn members(&self) -> i64 {
        i64::from(self.permits.max(1))
    }
}

#[async_trait]
impl Commands for SemaphoreCommands {
    fn kind(&self) -> LockKind {
        if self.permits == 0 {
            LockKind::Semaphore
        } else {
            LockKind::MultiSemaphore
        }
    }

    fn key(&self) -> &str {
        &self.key
    }

    async fn acquire<B>(
        &self,
        node: &B,
        id: &str,
        ttl_ms: u64,
        floor: u64,
    ) -> Result<u64, BackendError>
    where
        B: RedisBackend + ?Sized,
    {
        let args = [
            Arg::Int(i64::from(self.limit)),
            Arg::Int(i64::from(self.permits)),
            Arg::Str(id),
            ttl_arg(ttl_ms),
            // The script leaves the counter alone for "none".
            if self.fenced {
                token_arg(floor)
            } else {
                Arg::Str("none")
            },
        ];
        let keys = [self.key.as_str(), self.fence_key.as_str()];
        let reply = node.run_script(&SEMAPHORE_ACQUIRE, &keys, &args).await?;
        Ok(token(reply.expect_i64(&SEMAPHORE_ACQUIRE)?))
    }

    fn fence_key(&self) -> &str {
        &self.fence_key
    }

    fn fence_member(&self, id: &str) -> String {
        if self.permits == 0 {
            id.to_owned()
        } else {
            format!("{id}_0")
        }
    }

    async fn refresh<B>(&self, node: &B, id: &str, ttl_ms: u64) -> Result<bool, BackendError>
    where
        B: RedisBackend + ?Sized,
    {
        let args = [
            Arg::Int(i64::from(self.permits)),
            Arg::Str(id),
            ttl_arg(ttl_ms),
        ];
        let args = with_publish(node, &args);
        let reply = node
            .run_script(&SEMAPHORE_REFRESH, &[&self.key], &args)
            .await?;
        Ok(reply.expect_i64(&SEMAPHORE_REFRESH)? == 1)
    }

    async fn release<B>(&self, node: &B, id: &str) -> Result<bool, BackendError>
    where
        B: RedisBackend + ?Sized,
    {
        let args = with_publish(node, &[Arg::Int(i64::from(self.permits)), Arg::Str(id)]);
        let reply = node
            .run_script(&SEMAPHORE_RELEASE, &[&self.key], &args)
            .await?;
        Ok(reply.expect_i64(&SEMAPHORE_RELEASE)? == self.members())
    }
}
