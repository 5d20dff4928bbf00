//! Provides the tokio runtime context while redis-rs futures are polled.
//!
//! With `tokio-comp`, redis-rs arms tokio timers (the multiplexed
//! connection's response timeout, for one), and those panic when polled
//! outside a tokio runtime. redsem polls backend futures from any executor
//! and from its own refresh thread, so the backend enters the runtime it
//! captured each time it polls the client's future.

use std::future::{poll_fn, Future};
use std::pin::pin;

/// The runtime a backend enters while polling; empty under smol.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuntimeContext {
    #[cfg(feature = "tokio")]
    handle: Option<tokio::runtime::Handle>,
}

impl RuntimeContext {
    /// The tokio runtime the caller runs in, if any.
    pub(crate) fn current() -> Self {
        RuntimeContext {
            #[cfg(feature = "tokio")]
            handle: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// A context that enters `handle`.
    #[cfg(feature = "tokio")]
    pub(crate) fn from_handle(handle: tokio::runtime::Handle) -> Self {
        RuntimeContext {
            handle: Some(handle),
        }
    }

    /// Polls `fut` to completion, inside the runtime for every poll.
    pub(crate) async fn run<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            #[cfg(feature = "tokio")]
            let _guard = self.handle.as_ref().map(tokio::runtime::Handle::enter);
            fut.as_mut().poll(cx)
        })
        .await
    }
}

#[cfg(all(test, feature = "tokio"))]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn polls_inside_the_captured_runtime_from_a_plain_thread() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .expect("tokio runtime");
        let ctx = RuntimeContext::from_handle(rt.handle().clone());
        // Without the runtime entered, both lines below panic.
        futures::executor::block_on(ctx.run(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            drop(tokio::runtime::Handle::current());
        }));
        assert!(RuntimeContext::current().handle.is_none());
    }
}
