//! TLS: refusing `rediss://` without TLS support, choosing a rustls crypto
//! provider, and turning panics of the client while connecting into errors.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;

use redsem_core::{BackendError, BackendErrorKind};

/// True if this build of the adapter enables one of fred's TLS features.
pub(crate) const TLS_COMPILED: bool = cfg!(any(
    feature = "enable-rustls-ring",
    feature = "enable-rustls",
    feature = "enable-native-tls"
));

/// The scheme of `url` (before the first `:`), lower-cased.
fn scheme(url: &str) -> String {
    url.split_once(':')
        .map_or("", |(scheme, _)| scheme)
        .trim()
        .to_ascii_lowercase()
}

/// True if `url` asks for TLS: fred's `rediss`, `rediss-cluster`,
/// `rediss-sentinel` and the `valkeys` variants.
pub(crate) fn wants_tls(url: &str) -> bool {
    let scheme = scheme(url);
    scheme.starts_with("rediss") || scheme.starts_with("valkeys")
}

/// Refuses a URL asking for TLS when TLS is not compiled in (fred would
/// connect in plaintext). The error names the features to enable; it does
/// not quote the URL, which may hold a password.
pub(crate) fn check_url(url: &str) -> Result<(), BackendError> {
    if wants_tls(url) && !TLS_COMPILED {
        return Err(BackendError::new(
            BackendErrorKind::Other,
            format!(
                "`{}://` asks for TLS, but redsem-fred was built without TLS support; \
                 enable its `enable-rustls-ring` feature (or `enable-rustls`, \
                 `enable-native-tls`). Not connecting in plaintext",
                scheme(url)
            ),
        ));
    }
    Ok(())
}

/// Makes sure rustls has a process-level crypto provider (rustls panics
/// without one when its build has no provider feature, or more than one):
/// installs ring's (or aws-lc-rs's, with `enable-rustls` alone) unless one
/// is installed already.
#[cfg(any(feature = "enable-rustls-ring", feature = "enable-rustls"))]
pub(crate) fn ensure_crypto_provider() {
    use fred::rustls::crypto::CryptoProvider;
    if CryptoProvider::get_default().is_none() {
        #[cfg(feature = "enable-rustls-ring")]
        let provider = fred::rustls::crypto::ring::default_provider();
        #[cfg(not(feature = "enable-rustls-ring"))]
        let provider = fred::rustls::crypto::aws_lc_rs::default_provider();
        let _ = provider.install_default();
    }
}

/// Without a rustls feature there is nothing to install.
#[cfg(not(any(feature = "enable-rustls-ring", feature = "enable-rustls")))]
pub(crate) fn ensure_crypto_provider() {}

/// Runs `f`, turning a panic into an error of kind
/// [`Other`](BackendErrorKind::Other).
pub(crate) fn catch<T>(f: impl FnOnce() -> T, what: &str) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panicked(payload.as_ref(), what))
}

/// Polls `fut` to completion; a panic while polling ends it with an error
/// (of kind [`Other`](BackendErrorKind::Other)). The panicked future is
/// never polled again.
pub(crate) async fn catch_panic<F: Future>(fut: F, what: &str) -> Result<F::Output, BackendError> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panicked(payload.as_ref(), what))),
        },
    )
    .await
}

/// The error for a panic with `payload` while doing `what`.
fn panicked(payload: &(dyn Any + Send), what: &str) -> BackendError {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    };
    let hint = if message.contains("CryptoProvider") {
        " (enable redsem-fred's `enable-rustls-ring` feature, or install a rustls \
         CryptoProvider before connecting)"
    } else {
        ""
    };
    BackendError::new(
        BackendErrorKind::Other,
        format!("fred panicked while {what}: {message}{hint}"),
    )
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
            "rediss-cluster://h:1",
            "rediss-sentinel://h",
            "valkeys://h",
        ] {
            assert!(wants_tls(url), "{url}");
        }
        for url in [
            "redis://h:1",
            "redis-cluster://h",
            "valkey://h",
            "",
            "rediss",
        ] {
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
            assert!(err.message().contains("`enable-rustls-ring`"), "{err}");
            assert!(!err.message().contains("secret"), "{err}");
        }
        assert!(check_url("redis://user:secret@h:1").is_ok());
    }

    #[test]
    fn panics_become_errors() {
        fn panics() -> u8 {
            panic!("no process-level CryptoProvider available")
        }
        let err = catch(panics, "parsing").expect_err("caught");
        assert_eq!(err.kind(), BackendErrorKind::Other);
        assert!(err.message().contains("`enable-rustls-ring`"), "{err}");
        let err = futures::executor::block_on(catch_panic(async { panics() }, "connecting"))
            .expect_err("caught");
        assert!(err.message().contains("connecting"), "{err}");
        assert_eq!(catch(|| 3, "x").expect("no panic"), 3);
    }
}
