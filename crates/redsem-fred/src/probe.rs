//! Why is the client not connected? A probe connection finds out.
//!
//! A fred client whose connection failed for good (a wrong password at
//! `init()`, say, without a reconnect policy) keeps accepting commands: they
//! wait in its queue for a connection that never comes, and every call ends
//! in redsem's per-call timeout, which hides the cause. So while the client
//! is not connected, a call also starts a short-lived probe client with the
//! same configuration; if the server refuses it (`WRONGPASS`, `NOAUTH`,
//! `NOPERM`, a bad database index, a failed TLS handshake...), the call
//! fails at once with that cause. A probe that connects, or that cannot
//! reach the server, changes nothing: the call waits in the queue as before
//! (the client may be about to connect or reconnect).

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use fred::error::Error;
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ConnectionConfig, PerformanceConfig};
use fred::types::{Builder, ClientState};
use redsem_core::{BackendError, BackendErrorKind};

use crate::convert;

/// How long one probe may take before it is given up (it then says
/// nothing).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one probe starts per this interval per backend (and its clones),
/// and a refusal found by a probe is reported by calls for this long.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The probe state shared by a backend and its clones.
#[derive(Debug, Default)]
pub(crate) struct Prober {
    state: Mutex<ProbeState>,
}

#[derive(Debug, Default)]
struct ProbeState {
    /// When the last probe started.
    started: Option<Instant>,
    /// The last refusal and when it was seen.
    refusal: Option<(Instant, BackendErrorKind, String)>,
}

/// What a call should do while the client is not connected.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A probe refused recently: fail with this.
    Fail(BackendError),
    /// Send the command and wait, a probe started or finished recently.
    Wait,
    /// Send the command and probe alongside.
    Probe,
}

impl Prober {
    /// A fresh prober, to share between clones of a backend.
    pub(crate) fn shared() -> Arc<Self> {
        Arc::new(Prober::default())
    }

    /// What a call is to do when the client is not connected.
    pub(crate) fn plan(&self) -> Plan {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some((at, kind, message)) = &state.refusal {
            if now.duration_since(*at) < PROBE_INTERVAL {
                return Plan::Fail(BackendError::new(*kind, message.clone()));
            }
        }
        if state
            .started
            .is_some_and(|at| now.duration_since(at) < PROBE_INTERVAL)
        {
            return Plan::Wait;
        }
        state.started = Some(now);
        Plan::Probe
    }

    /// Records the outcome of a probe.
    fn record(&self, refusal: Option<&BackendError>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.refusal = refusal.map(|err| (Instant::now(), err.kind(), err.message().to_owned()));
    }
}

/// True unless the client has a working connection.
pub(crate) fn disconnected<C: ClientLike>(client: &C) -> bool {
    client.state() != ClientState::Connected
}

/// Starts a probe of `client`'s configuration as a tokio task (so that it
/// always runs to its end and closes its connection, even when the call
/// that started it is done first). Must be called inside a tokio runtime;
/// outside one there is no probe (`None`).
pub(crate) fn spawn<C: ClientLike>(
    client: &C,
    prober: Arc<Prober>,
) -> Option<tokio::task::JoinHandle<Option<BackendError>>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let config = client.client_config();
    let connection = client.connection_config().clone();
    let perf = client.perf_config();
    Some(handle.spawn(async move {
        let refusal = probe(config, connection, perf).await;
        prober.record(refusal.as_ref());
        refusal
    }))
}

/// Connects a new client with these settings and no reconnect policy; the
/// error, if the server (or TLS) refused it.
async fn probe(
    mut config: Config,
    connection: ConnectionConfig,
    perf: PerformanceConfig,
) -> Option<BackendError> {
    config.fail_fast = true;
    let client = Builder::from_config(config)
        .set_connection_config(connection)
        .set_performance_config(perf)
        .build()
        .ok()?;
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, client.init()).await;
    // Close the probe's connection whatever happened; bounded.
    let _ = tokio::time::timeout(PROBE_TIMEOUT, client.quit()).await;
    match outcome {
        Ok(Err(err)) => refusal(err),
        Ok(Ok(_)) | Err(_) => None,
    }
}

/// A connection error that tells why the client is not connected: the
/// server's refusal or a configuration (TLS...) error, not a network one.
fn refusal(err: Error) -> Option<BackendError> {
    let kind = convert::error(err.clone()).kind();
    matches!(kind, BackendErrorKind::Server | BackendErrorKind::Other).then(|| {
        BackendError::new(
            kind,
            format!(
                "the fred client is not connected: a connection with its configuration \
                 fails with {err}"
            ),
        )
    })
}

/// Awaits `call`; if `probe` finds a refusal first, returns that instead
/// (dropping `call`, which fred then answers to nobody).
pub(crate) async fn race<T>(
    call: impl Future<Output = Result<T, Error>>,
    probe: impl Future<Output = Option<BackendError>>,
) -> Result<T, BackendError> {
    let mut call = pin!(call);
    let mut probe = pin!(probe);
    let mut probing = true;
    poll_fn(|cx| {
        if let Poll::Ready(result) = call.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(convert::error));
        }
        if probing {
            if let Poll::Ready(refusal) = probe.as_mut().poll(cx) {
                probing = false;
                if let Some(err) = refusal {
                    return Poll::Ready(Err(err));
                }
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use fred::error::ErrorKind;

    #[test]
    fn one_probe_per_interval_and_refusals_are_remembered() {
        let prober = Prober::default();
        assert!(matches!(prober.plan(), Plan::Probe));
        assert!(matches!(prober.plan(), Plan::Wait));
        let err = BackendError::new(BackendErrorKind::Server, "WRONGPASS nope");
        prober.record(Some(&err));
        match prober.plan() {
            Plan::Fail(err) => {
                assert_eq!(err.kind(), BackendErrorKind::Server);
                assert!(err.message().contains("WRONGPASS"));
            }
            other => panic!("{other:?}"),
        }
        prober.record(None);
        assert!(matches!(prober.plan(), Plan::Wait));
    }

    #[test]
    fn only_refusals_count() {
        let auth = Error::new(ErrorKind::Auth, "WRONGPASS invalid username-password pair");
        let err = refusal(auth).expect("a refusal");
        assert_eq!(err.kind(), BackendErrorKind::Server);
        assert!(err.message().contains("WRONGPASS"), "{err}");
        assert!(refusal(Error::new(ErrorKind::IO, "connection refused")).is_none());
        assert!(refusal(Error::new(ErrorKind::Timeout, "slow")).is_none());
        assert!(refusal(Error::new(ErrorKind::Unknown, "LOADING wait")).is_none());
    }

    #[test]
    fn the_call_wins_unless_the_probe_refuses() {
        let ok =
            futures::executor::block_on(race(async { Ok::<_, Error>(1) }, std::future::pending()));
        assert_eq!(ok.expect("call"), 1);
        let refused =
            futures::executor::block_on(race(std::future::pending::<Result<u8, Error>>(), async {
                Some(BackendError::new(BackendErrorKind::Server, "NOAUTH"))
            }));
        assert_eq!(
            refused.expect_err("refused").kind(),
            BackendErrorKind::Server
        );
        // A probe that finds nothing leaves the call to finish.
        let mut polls = 0;
        let late = futures::executor::block_on(race(
            poll_fn(|cx| {
                polls += 1;
                if polls < 3 {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(Ok::<_, Error>(2))
                }
            }),
            async { None },
        ));
        assert_eq!(late.expect("call"), 2);
    }
}
