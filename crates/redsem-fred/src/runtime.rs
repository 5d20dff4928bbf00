//! Provides the tokio runtime context while fred futures are polled.
//!
//! fred arms tokio timers (command timeouts) that panic when polled outside
//! a tokio runtime. redsem polls backend futures from any executor and from
//! its own refresh thread, so the backend enters the runtime it captured each
//! time it polls fred's future.

use std::future::{poll_fn, Future};
use std::pin::pin;

use tokio::runtime::Handle;

/// The runtime a backend enters while polling, if it knows one.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuntimeContext {
    handle: Option<Handle>,
}

impl RuntimeContext {
    /// The tokio runtime the caller runs in, if any.
    pub(crate) fn current() -> Self {
        RuntimeContext {
            handle: Handle::try_current().ok(),
        }
    }

    /// A context that enters `handle`.
    pub(crate) fn from_handle(handle: Handle) -> Self {
        RuntimeContext {
            handle: Some(handle),
        }
    }

    /// Polls `fut` to completion, inside the runtime for every poll.
    /// The captured runtime, if any.
    pub(crate) fn handle(&self) -> Option<&Handle> {
        self.handle.as_ref()
    }

    pub(crate) async fn run<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            let _guard = self.handle.as_ref().map(Handle::enter);
            fut.as_mut().poll(cx)
        })
        .await
    }
}

#[cfg(test)]
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
            drop(Handle::current());
        }));
        assert!(RuntimeContext::current().handle.is_none());
    }
}
