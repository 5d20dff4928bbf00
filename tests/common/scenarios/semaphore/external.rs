//! Taking over a hold made elsewhere (`acquiredExternally`).

use redsem_core::Semaphore;

use super::{AnySem, KEY};
use crate::common::scenarios::support::{assert_timeout, no_refresh, takeover};
use crate::common::timing::OUTLIVE;
use crate::common::Env;

/// SEM-08/09, MSEM-08/09: a hold made elsewhere (here: detached) is taken
/// over with one refresh and kept alive under the same members; the flag is
/// spent afterwards.
pub(crate) async fn acquired_externally_with(env: Env, limit: u32, permits: u32) {
    let ext = AnySem::new(&env, limit, permits, no_refresh().build().unwrap());
    let id = ext.acquire().await.unwrap().detach();
    let expected = ext.members(&id);

    let local = AnySem::new(&env, limit, permits, takeover(&id));
    let g = local.acquire().await.unwrap();
    assert_eq!(g.identifier(), id);
    env.time.sleep(OUTLIVE).await;
    assert_eq!(
        env.node().zrange(KEY),
        expected,
        "the same members, kept alive by local"
    );
    assert!(g.is_acquired());
    g.release().await.unwrap();
    assert_eq!(env.node().pttl(KEY), -2);

    let g = local.acquire().await.unwrap();
    assert_eq!(
        env.node().zrange(KEY),
        expected,
        "a normal acquire under the fixed identifier"
    );
    g.release().await.unwrap();
    assert!(env.node().zrange(KEY).is_empty());
}

/// SEM-08/09.
pub async fn acquired_externally(env: Env) {
    acquired_externally_with(env, 3, 0).await;
}

/// Taking over a hold that is gone fails after one attempt.
pub async fn acquired_externally_but_gone(env: Env) {
    let local = Semaphore::with_options(env.backend(), "key", 3, takeover("nobody")).unwrap();
    assert!(local.try_acquire().await.unwrap().is_none());
    let err = local.acquire().await.unwrap_err();
    assert_timeout(&err, "Acquire semaphore semaphore:key timeout");
    assert_eq!(
        env.node().pttl(KEY),
        -2,
        "a failed takeover does not create the member"
    );
}
