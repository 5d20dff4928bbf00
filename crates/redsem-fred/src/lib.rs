#![doc = include_str!("../README.md")]

mod convert;
mod runtime;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{KeysInterface, LuaInterface};
use fred::types::{Expiration, MultipleKeys, SetOptions, Value};
use redsem_core::{Arg, BackendError, RedisBackend, Reply, Script};

pub use fred;

use crate::runtime::RuntimeContext;

/// A [`RedisBackend`] over a fred client.
///
/// `C` is any fred client type that implements
/// [`LuaInterface`] and [`KeysInterface`]: [`Client`] (the default) or
/// [`fred::clients::Pool`].
///
/// The client may be handed over before or after `init()`/`connect()`;
/// commands sent before the connection is up wait in fred's queue (within
/// redsem's own per-call timeout).
///
/// Cloning the backend clones the client handle: the clone talks to the same
/// server.
#[derive(Debug, Clone)]
pub struct FredBackend<C = Client> {
    client: C,
    runtime: RuntimeContext,
}

impl<C> FredBackend<C>
where
    C: LuaInterface + KeysInterface + Send + Sync + 'static,
{
    /// A backend over `client`, a fred client you built and configured
    /// (TLS, timeouts, reconnect policy...).
    ///
    /// This captures the tokio runtime the caller runs in, if any, and enters
    /// it whenever it polls fred, so the backend works from any executor.
    /// Call it inside the runtime that runs the client, or use
    /// [`with_runtime`](Self::with_runtime).
    pub fn new(client: C) -> Self {
        FredBackend {
            client,
            runtime: RuntimeContext::current(),
        }
    }

    /// Enters `handle`'s runtime while polling fred, instead of the one
    /// captured by [`new`](Self::new). Use it when building the backend
    /// outside the runtime that runs the client.
    #[must_use]
    pub fn with_runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = RuntimeContext::from_handle(handle);
        self
    }

    /// The client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The client, giving up the backend.
    pub fn into_inner(self) -> C {
        self.client
    }
}

fn keys(keys: &[&str]) -> MultipleKeys {
    keys.iter().copied().collect()
}

#[async_trait]
impl<C> RedisBackend for FredBackend<C>
where
    C: LuaInterface + KeysInterface + std::fmt::Debug + Send + Sync + 'static,
{
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        let call = self.client.evalsha::<Value, _, _, _>(
            script.sha1(),
            self::keys(keys),
            convert::args(args),
        );
        self.runtime
            .run(call)
            .await
            .map(convert::reply)
            .map_err(convert::error)
    }

    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        let call = self.client.eval::<Value, _, _, _>(
            fred::util::static_str(script.source()),
            self::keys(keys),
            convert::args(args),
        );
        self.runtime
            .run(call)
            .await
            .map(convert::reply)
            .map_err(convert::error)
    }

    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        let ttl = Expiration::PX(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
        let call =
            self.client
                .set::<Value, _, _>(key, value, Some(ttl), Some(SetOptions::NX), false);
        convert::set_nx(self.runtime.run(call).await.map_err(convert::error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_backend<B: RedisBackend + Clone + 'static>() {}

    #[test]
    fn client_types_make_backends() {
        assert_backend::<FredBackend>();
        assert_backend::<FredBackend<fred::clients::Pool>>();
    }
}
