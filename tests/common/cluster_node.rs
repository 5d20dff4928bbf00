//! [`Node`] over the test binary's shared Redis Cluster
//! (`redsem_testing::shared_cluster`, 3 masters on loopback), and the
//! sequential runner the cluster conformance binaries use.
//!
//! All tests of a binary share one cluster, and the scenarios use fixed keys
//! (`mutex:key`...), so [`run_on_cluster`] runs the scenarios of a list one
//! after the other, each on a fresh [`Env`] and a freshly flushed cluster,
//! and holds a process-wide lock while it does (the test harness runs
//! `#[test]`s on parallel threads).

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redsem_core::RedisBackend;
use redsem_testing::{RedisCluster, RedisServer, RespValue};

use super::node::{Env, Node};
use super::time::Time;

/// Scenarios that stop, start or pause their node, which the cluster runners
/// skip: node faults are exercised on single servers (the conformance_redis
/// and conformance_fred binaries), while the shared cluster must stay up for
/// the rest of the binary. Keep it in step with the scenario lists (grep
/// `tests/common/scenarios/` for `.stop()`, `.start()`, `.pause()`);
/// `deny_list_names_scenarios` in the cluster binaries fails on a name that
/// is in no list, and a scenario missing here fails on the cluster with
/// [`NODE_FAULT_PANIC`].
pub const NODE_FAULT_SCENARIOS: &[&str] = &[
    "mutex_node_restart",                     // stop() + start()
    "mutex_paused_node",                      // pause() + resume()
    "semaphore_node_restart",                 // semaphore::node_restart_with: stop() + start()
    "multi_semaphore_node_restart",           // semaphore::node_restart_with: stop() + start()
    "semaphore_survives_a_short_pause",       // semaphore::survives_a_short_pause_with: pause()
    "multi_semaphore_survives_a_short_pause", // the same, via survives_a_short_pause_with
];

/// The panic message of the fault methods of [`ClusterNode`].
pub const NODE_FAULT_PANIC: &str =
    "node faults are exercised on single servers, not on the shared \
     cluster (add the scenario to NODE_FAULT_SCENARIOS in tests/common/cluster_node.rs)";

/// Bound on one scenario, so a hang names its scenario instead of stalling
/// the binary.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary's shared cluster; starting it (once, about 2 s) failing fails
/// the test with the reason.
pub fn shared() -> &'static RedisCluster {
    redsem_testing::shared_cluster().unwrap_or_else(|e| panic!("{e}"))
}

/// A [`Node`] whose inspection commands go to the master owning the key.
pub struct ClusterNode {
    cluster: &'static RedisCluster,
    backend: Arc<dyn RedisBackend>,
}

impl ClusterNode {
    /// `backend` is the cluster client under test, connected to
    /// [`shared`]'s cluster.
    pub fn new(backend: Arc<dyn RedisBackend>) -> Self {
        ClusterNode {
            cluster: shared(),
            backend,
        }
    }

    pub fn cluster(&self) -> &'static RedisCluster {
        self.cluster
    }

    /// The master that owns `key`'s slot.
    pub fn owner(&self, key: &str) -> &'static RedisServer {
        self.cluster
            .node_for_key(key)
            .unwrap_or_else(|e| panic!("the owner of {key:?}: {e}"))
    }

    fn cmd_for_key(&self, key: &str, args: &[&str]) -> RespValue {
        cmd(self.owner(key), args)
    }
}

/// `args` on `server`; an error reply fails the test.
pub fn cmd(server: &RedisServer, args: &[&str]) -> RespValue {
    match server.command(args) {
        Ok(RespValue::Error(e)) => panic!("{args:?} on port {} failed: {e}", server.port()),
        Ok(v) => v,
        Err(e) => panic!("{args:?} on port {} failed: {e}", server.port()),
    }
}

/// `args` on every master of the shared cluster.
pub fn on_every_master(args: &[&str]) {
    for server in shared().nodes() {
        cmd(server, args);
    }
}

fn strings(v: &RespValue) -> Vec<String> {
    v.as_array()
        .unwrap_or_default()
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_owned())
        .collect()
}

impl Node for ClusterNode {
    fn backend(&self) -> Arc<dyn RedisBackend> {
        self.backend.clone()
    }
    fn get(&self, key: &str) -> Option<String> {
        self.cmd_for_key(key, &["GET", key])
            .as_str()
            .map(str::to_owned)
    }
    fn set(&self, key: &str, value: &str) {
        self.cmd_for_key(key, &["SET", key, value]);
    }
    fn del(&self, key: &str) {
        self.cmd_for_key(key, &["DEL", key]);
    }
    fn zrange(&self, key: &str) -> Vec<String> {
        strings(&self.cmd_for_key(key, &["ZRANGE", key, "0", "-1"]))
    }
    fn zrange_with_scores(&self, key: &str) -> Vec<(String, i64)> {
        let flat = strings(&self.cmd_for_key(key, &["ZRANGE", key, "0", "-1", "WITHSCORES"]));
        flat.chunks(2)
            .map(|p| {
                (
                    p[0].clone(),
                    p[1].parse::<f64>().expect("numeric score") as i64,
                )
            })
            .collect()
    }
    fn zadd(&self, key: &str, score: i64, member: &str) {
        self.cmd_for_key(key, &["ZADD", key, &score.to_string(), member]);
    }
    fn pttl(&self, key: &str) -> i64 {
        self.cmd_for_key(key, &["PTTL", key])
            .as_integer()
            .expect("PTTL answers an integer")
    }
    fn now_ms(&self) -> i64 {
        // All masters run on this host, so any master's clock will do.
        let t = strings(&cmd(&self.cluster.nodes()[0], &["TIME"]));
        let secs: i64 = t[0].parse().expect("seconds");
        let micros: i64 = t[1].parse().expect("micros");
        secs * 1000 + micros / 1000
    }
    fn flush_scripts(&self) {
        for server in self.cluster.nodes() {
            cmd(server, &["SCRIPT", "FLUSH"]);
        }
    }
    fn stop(&self) {
        panic!("{NODE_FAULT_PANIC}");
    }
    fn start(&self) {
        fault_undone();
    }
    fn pause(&self) {
        panic!("{NODE_FAULT_PANIC}");
    }
    fn resume(&self) {
        fault_undone();
    }
}

/// `start`/`resume`: panics like the faults, except while unwinding (a
/// scenario's drop guard resuming the node after a failure), where a second
/// panic would abort the whole binary and lose the report.
fn fault_undone() {
    if !std::thread::panicking() {
        panic!("{NODE_FAULT_PANIC}");
    }
}

/// A scenario of the conformance lists, type-erased.
pub struct Scenario {
    pub name: &'static str,
    pub nodes: usize,
    pub run: fn(Env) -> Pin<Box<dyn Future<Output = ()>>>,
}

/// For the conformance list macros (`single_node_scenarios!(cluster_scenario_list)`
/// in expression position): the list as a `Vec<Scenario>`.
#[allow(unused_macros)] // only the cluster binaries use it
macro_rules! cluster_scenario_list {
    ($($name:ident: $nodes:expr => $path:path,)*) => {
        ::std::vec![$(
            $crate::common::cluster_node::Scenario {
                name: stringify!($name),
                nodes: $nodes,
                run: |env| ::std::boxed::Box::pin($path(env)),
            },
        )*] as ::std::vec::Vec<$crate::common::cluster_node::Scenario>
    };
}

#[allow(unused_imports)]
pub(crate) use cluster_scenario_list;

/// Serialises the tests of a binary that use the shared cluster (they flush
/// it). A test that failed while holding it does not block the others.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tokio multi-thread runtime, as the other real-server runners use.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `FLUSHALL` and `SCRIPT FLUSH` on every master: no keys of an earlier
/// scenario, and every script has to load lazily again.
pub fn reset_cluster() {
    on_every_master(&["FLUSHALL"]);
    on_every_master(&["SCRIPT", "FLUSH"]);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}

/// Runs `scenarios` (the list called `list`) one by one on the shared
/// cluster, skipping [`NODE_FAULT_SCENARIOS`]. Each runs in its own tokio
/// runtime on a fresh `Env` of one [`ClusterNode`] over a backend from
/// `connect`, after [`reset_cluster`], bounded by a minute. Every scenario
/// runs even if an earlier one failed; then the test fails naming all
/// failed scenarios and their panic messages.
pub fn run_on_cluster<F, Fut>(list: &str, scenarios: Vec<Scenario>, connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn RedisBackend>>,
{
    let _serial = exclusive();
    let started = Instant::now();
    shared();
    println!("[{list}] cluster up after {:?}", started.elapsed());
    let (mut ran, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    for scenario in scenarios {
        let name = scenario.name;
        if NODE_FAULT_SCENARIOS.contains(&name) {
            println!("[{list}] {name}: skipped (node faults)");
            skipped += 1;
            continue;
        }
        println!("[{list}] {name}: running");
        ran += 1;
        let start = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            assert_eq!(
                scenario.nodes, 1,
                "{name} needs {} independent nodes; a cluster is one node",
                scenario.nodes
            );
            reset_cluster();
            runtime().block_on(async {
                let env = Env {
                    nodes: vec![Arc::new(ClusterNode::new(connect().await))],
                    mock: false,
                    time: Time::Real,
                };
                tokio::time::timeout(SCENARIO_TIMEOUT, (scenario.run)(env))
                    .await
                    .unwrap_or_else(|_| panic!("no result within {SCENARIO_TIMEOUT:?}"));
            });
        }));
        let took = start.elapsed();
        match outcome {
            Ok(()) => println!("[{list}] {name}: ok in {took:?}"),
            Err(payload) => {
                let message = panic_message(&*payload);
                println!("[{list}] {name}: FAILED in {took:?}: {message}");
                failures.push(format!("{name}: {message}"));
            }
        }
    }
    println!(
        "[{list}] {ran} run, {} failed, {skipped} skipped, in {:?}",
        failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} scenarios of {list} failed on the cluster:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Panics if [`NODE_FAULT_SCENARIOS`] names a scenario that is in none of
/// `lists`, so the deny list cannot go stale silently.
pub fn check_deny_list(lists: &[&[Scenario]]) {
    let stale: Vec<&str> = NODE_FAULT_SCENARIOS
        .iter()
        .copied()
        .filter(|denied| !lists.iter().any(|l| l.iter().any(|s| s.name == *denied)))
        .collect();
    assert!(
        stale.is_empty(),
        "NODE_FAULT_SCENARIOS names scenarios that no list has: {stale:?}"
    );
}

/// `SCRIPT EXISTS sha` on `server`: whether `server` has the script cached.
pub fn script_cached(server: &RedisServer, sha: &str) -> bool {
    let reply = cmd(server, &["SCRIPT", "EXISTS", sha]);
    match reply
        .as_array()
        .and_then(|a| a.first())
        .and_then(RespValue::as_integer)
    {
        Some(1) => true,
        Some(0) => false,
        _ => panic!("SCRIPT EXISTS answered {reply}"),
    }
}

/// The cluster-specific check both cluster binaries run (on a flushed
/// cluster, under [`exclusive`]): mutexes whose keys live on each of the
/// masters are held at the same time through the one `backend` (refresh
/// included), and after `SCRIPT FLUSH` on every master each release still
/// works (EVALSHA fails with NOSCRIPT, EVAL follows) and leaves the release
/// script cached on exactly the masters whose keys were released so far.
pub async fn keys_on_every_master(backend: Arc<dyn RedisBackend>) {
    use crate::common::timing::{t, OUTLIVE};
    use redsem_core::script::MUTEX_RELEASE;

    let node = ClusterNode::new(backend.clone());
    let cluster = node.cluster();
    let masters = cluster.nodes().len();

    // One mutex key per master: mutex:a, mutex:b, ... by owner.
    struct Picked {
        name: String,
        key: String,
        slot: i64,
        owner: &'static RedisServer,
    }
    let mut picked: Vec<Picked> = Vec::new();
    for c in 'a'..='z' {
        let name = c.to_string();
        let key = format!("mutex:{name}");
        let slot = cmd(&cluster.nodes()[0], &["CLUSTER", "KEYSLOT", &key])
            .as_integer()
            .expect("CLUSTER KEYSLOT answers an integer");
        let owner = node.owner(&key);
        if picked.iter().all(|p| p.owner.port() != owner.port()) {
            picked.push(Picked {
                name,
                key,
                slot,
                owner,
            });
        }
        if picked.len() == masters {
            break;
        }
    }
    assert_eq!(
        picked.len(),
        masters,
        "no key of mutex:a..mutex:z for some master"
    );
    for p in &picked {
        println!("{} is in slot {} on port {}", p.key, p.slot, p.owner.port());
    }
    for (i, p) in picked.iter().enumerate() {
        for q in &picked[i + 1..] {
            assert_ne!(p.slot, q.slot, "{} and {} share a slot", p.key, q.key);
            assert_ne!(
                p.owner.port(),
                q.owner.port(),
                "{} and {} share a master",
                p.key,
                q.key
            );
        }
    }

    // Held at once through one backend, and kept past the lock timeout by
    // refreshes that go to three different masters.
    let mutexes: Vec<redsem_core::Mutex<Arc<dyn RedisBackend>>> = picked
        .iter()
        .map(|p| redsem_core::Mutex::with_options(backend.clone(), &p.name, t()).expect("mutex"))
        .collect();
    let guards: Vec<_> = futures::future::join_all(mutexes.iter().map(|m| m.acquire()))
        .await
        .into_iter()
        .zip(&picked)
        .map(|(r, p)| r.unwrap_or_else(|e| panic!("acquire {}: {e}", p.key)))
        .collect();
    crate::common::timing::sleep(OUTLIVE).await;
    for (g, p) in guards.iter().zip(&picked) {
        assert!(g.is_acquired(), "{} lost", p.key);
        assert_eq!(
            cmd(p.owner, &["GET", &p.key]).as_str(),
            Some(g.identifier()),
            "{}",
            p.key
        );
        let other = redsem_core::Mutex::with_options(backend.clone(), &p.name, t()).expect("mutex");
        assert!(
            other.try_acquire().await.expect("try_acquire").is_none(),
            "{} taken twice",
            p.key
        );
    }

    // Lazy script loading, per master.
    let sha = MUTEX_RELEASE.sha1();
    node.flush_scripts();
    for server in cluster.nodes() {
        assert!(
            !script_cached(server, sha),
            "SCRIPT FLUSH left it on port {}",
            server.port()
        );
    }
    for (i, (g, p)) in guards.into_iter().zip(&picked).enumerate() {
        g.release()
            .await
            .unwrap_or_else(|e| panic!("release {} after SCRIPT FLUSH: {e}", p.key));
        assert_eq!(
            cmd(p.owner, &["GET", &p.key]),
            RespValue::Nil,
            "{} not released",
            p.key
        );
        assert!(
            script_cached(p.owner, sha),
            "release did not load the script on port {}",
            p.owner.port()
        );
        for q in &picked[i + 1..] {
            assert!(
                !script_cached(q.owner, sha),
                "port {} has the script before a release ran there",
                q.owner.port()
            );
        }
    }
}

/// Expands to the cluster test binary's tests for the backend that
/// `$connect()` builds: one `#[test]` per scenario list, the deny-list
/// check, and the keys-on-every-master check.
macro_rules! cluster_conformance_tests {
    ($connect:path) => {
        fn single_node_list() -> Vec<common::cluster_node::Scenario> {
            single_node_scenarios!(cluster_scenario_list)
        }

        fn semaphore_list() -> Vec<common::cluster_node::Scenario> {
            semaphore_scenarios!(cluster_scenario_list)
        }

        fn multi_semaphore_list() -> Vec<common::cluster_node::Scenario> {
            multi_semaphore_scenarios!(cluster_scenario_list)
        }

        #[test]
        fn single_node_scenarios_on_cluster() {
            common::cluster_node::run_on_cluster("single_node", single_node_list(), $connect);
        }

        #[test]
        fn semaphore_scenarios_on_cluster() {
            common::cluster_node::run_on_cluster("semaphore", semaphore_list(), $connect);
        }

        #[test]
        fn multi_semaphore_scenarios_on_cluster() {
            common::cluster_node::run_on_cluster(
                "multi_semaphore",
                multi_semaphore_list(),
                $connect,
            );
        }

        #[test]
        fn deny_list_names_scenarios() {
            common::cluster_node::check_deny_list(&[
                &single_node_list(),
                &semaphore_list(),
                &multi_semaphore_list(),
            ]);
        }

        /// Mutexes on every master at once through one connection; scripts
        /// load lazily on the master that owns the key.
        #[test]
        fn keys_on_every_master_and_lazy_scripts() {
            let _serial = common::cluster_node::exclusive();
            common::cluster_node::reset_cluster();
            common::cluster_node::runtime().block_on(async {
                common::cluster_node::keys_on_every_master($connect().await).await
            });
        }
    };
}

pub(crate) use cluster_conformance_tests;
