//! TLS: refusing `rediss://` without TLS support, choosing a rustls crypto
//! provider, and turning panics of the client while connecting into errors.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;

use redsem_core::{BackendError, BackendErrorKind};

/// True if this build of the adapter can speak TLS.
pub(crate) const TLS_COMPILED: bool = cfg!(any(
    feature = "tls-rustls",
    feature = "smol-tls-rustls",
    feature = "tls-native-tls",
    feature = "smol-tls-native-tls"
));

/// The scheme of `url` (before the first `:`), lower-cased.
fn scheme(url: &str) -> String {
    url.split_once(':')
        .map_or("", |(scheme, _)| scheme)
        .trim()
        .to_ascii_lowercase()
}

/// True if `url` asks for TLS (`rediss://`, `valkeys://`).
pub(crate) fn wants_tls(url: &str) -> bool {
    matches!(scheme(url).as_str(), "rediss" | "valkeys")
}

/// Refuses a URL asking for TLS when TLS is not compiled in, instead of
/// leaving it to the client. The error names the features to enable; it does
/// not quote the URL, which may hold a password.
pub(crate) fn check_url(url: &str) -> Result<(), BackendError> {
    if wants_tls(url) && !TLS_COMPILED {
        return Err(BackendError::new(
            BackendErrorKind::Other,
            format!(
                "`{}://` asks for TLS, but redsem-redis was built without TLS support; \
                 enable its `tls-rustls` feature (on smol: `smol-tls-rustls`) or \
                 `tls-native-tls` (`smol-tls-native-tls`). Not connecting in plaintext",
                scheme(url)
            ),
        ));
    }
    Ok(())
}

/// Makes sure rustls has a process-level crypto provider: installs ring's
/// unless one is installed already (by the application, or by a racing
/// thread, in which case that one stays).
///
/// Without one, redis-rs panics while building its TLS configuration when
/// the rustls in the build has no provider feature, or more than one.
#[cfg(any(feature = "tls-rustls", feature = "smol-tls-rustls"))]
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Without a rustls TLS feature there is nothing to install.
#[cfg(not(any(feature = "tls-rustls", feature = "smol-tls-rustls")))]
pub(crate) fn ensure_crypto_provider() {}

/// Polls `fut` to completion; a panic while polling ends it with an error
/// (of kind [`Other`](BackendErrorKind::Other)) instead of unwinding into
/// the caller. The panicked future is never polled again.
pub(crate) async fn catch_panic<F: Future>(fut: F, what: &str) -> Result<F::Output, BackendError> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(BackendError::new(
                BackendErrorKind::Other,
                format!(
                    "redis-rs panicked while {what}: {}{}",
                    panic_message(payload.as_ref()),
                    provider_hint(panic_message(payload.as_ref()))
                ),
            ))),
        },
    )
    .await
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Advice for rustls's panic about a missing crypto provider.
fn provider_hint(message: &str) -> &'static str {
    if message.contains("CryptoProvider") {
        " (enable redsem-redis's `tls-rustls` feature, which installs ring's \
         provider, or install a rustls CryptoProvider before connecting)"
    } else {
        ""
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tls_schemes_are_recognised() {
        for url in [
            "rediss://h:1",
            "REDISS://h",
            "valkeys://h",
            " rediss://u:p@h/0",
        ] {
            assert!(wants_tls(url), "{url}");
        }
        for url in ["redis://h:1", "valkey://h", "unix:///tmp/s", "", "rediss"] {
            assert!(!wants_tls(url), "{url}");
        }
    }

    #[test]
    fn refusal_names_the_feature_but_not_the_password() {
        let result = check_url("rediss://user:secret@h:1");
        if TLS_COMPILED {
            assert!(result.is_ok());
        } else {
            let err = result.expect_err("refused");
            assert_eq!(err.kind(), BackendErrorKind::Other);
            assert!(err.message().contains("`tls-rustls`"), "{err}");
            assert!(!err.message().contains("secret"), "{err}");
        }
        assert!(check_url("redis://user:secret@h:1").is_ok());
    }

    #[test]
    fn panics_become_errors() {
        fn panics() -> u8 {
            panic!("Could not automatically determine the process-level CryptoProvider")
        }
        let err = futures::executor::block_on(catch_panic(async { panics() }, "connecting"))
            .expect_err("panic caught");
        assert_eq!(err.kind(), BackendErrorKind::Other);
        assert!(err.message().contains("`tls-rustls`"), "{err}");
        let ok = futures::executor::block_on(catch_panic(async { 7 }, "connecting"));
        assert_eq!(ok.expect("no panic"), 7);
    }
}
