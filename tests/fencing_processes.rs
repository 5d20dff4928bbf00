//! Issue 12 on real redis-servers and several OS processes (the mock-only
//! checks are in tests/fencing.rs):
//!
//! 1. Worker processes (this binary, re-executed with `--exact <test>` and
//!    [`ROLE_ENV`]) take turns on one lock and append their fencing token
//!    to a Redis list inside the critical section. The list is then the
//!    order of the acquisitions: every token issued appears exactly once,
//!    and for a lock with one holder at a time the list strictly
//!    increases. Mutex, Semaphore (limit 1, and limit 3 for uniqueness
//!    only) and MultiSemaphore on one node, Mutex on the shared Cluster,
//!    and RedlockMutex on 3 nodes with node 2 crashed and restarted from
//!    its AOF in the middle of the run (node 3 crashed for the last third,
//!    so that every quorum then includes the restarted node).
//! 2. Redlock's tokens and restarts, deterministically: when a new quorum
//!    consists of a node restarted from its AOF and a node that missed the
//!    earlier holds, the token still goes past the old ones; when the
//!    restarted node kept nothing (no AOF, no RDB), the token starts over
//!    and a fenced resource refuses the new, legitimate holder. Tokens
//!    need nodes that keep every write across a restart; this test pins
//!    that down as it is (the docs do not say it yet).
//! 3. The classic paused holder: a child process holds the lock, is
//!    SIGSTOPped past its lock timeout, the parent takes the lock and
//!    writes a `FencedResource`; the child, continued, writes with its old
//!    token and is refused (`Stale { newest }`).
//!
//! Every server is started here on a free port and killed on drop; every
//! child process is killed if the test fails; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use redsem_core::{
    FencedResource, FencedWrite, LockError, LockGuard, LockOptions, MultiSemaphore, Mutex,
    RedlockMutex, Semaphore,
};
use redsem_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redsem_redis::redis::cluster::ClusterClient;
use redsem_redis::redis::{self, AsyncConnectionConfig};
use redsem_redis::RedisRsBackend;
use redsem_testing::{RedisServer, RespValue};
use tokio::runtime::Runtime;

/// Set in a child process: what it does (see [`Role`]).
const ROLE_ENV: &str = "REDSEM_FENCING_PROCESS_ROLE";
/// Worker processes per run (part 1).
const WORKERS: usize = 4;
/// Acquisitions per run, all workers together (part 1).
const ACQUISITIONS: usize = 100;
/// The lock every test uses (each test has servers of its own; the
/// Cluster test, which shares the binary's cluster, uses its own key).
const KEY: &str = "fenced";
/// On the aux server: the tokens in the order they were appended.
const LOG: &str = "fence:log";
/// On the aux server: every token the workers were given, in any order.
const ISSUED: &str = "fence:issued";
/// On the aux server: one "go" per acquisition, then one "stop" per worker.
const TICKETS: &str = "fence:tickets";
/// On the aux server: how many workers are connected and waiting.
const READY: &str = "fence:ready";
/// The value part 2 and 3 fence.
const RESOURCE: &str = "fence:resource";
/// How long a worker waits for its next ticket, in seconds.
const TICKET_WAIT_SECS: u64 = 20;
/// Bound on servers, processes and locks reaching a state a test waits for.
const SETTLE: Duration = Duration::from_secs(20);
/// Stdout marker of the paused holder's token line.
const TOKEN_LINE: &str = "FENCING-HOLDER-TOKEN ";
/// Stdout marker of the paused holder's late-write line.
const WRITE_LINE: &str = "FENCING-HOLDER-WRITE ";

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// What a child process is asked to do, passed in [`ROLE_ENV`] as
/// `<role>|<kind>|<lock urls, comma separated>|<aux url>`.
#[derive(Debug)]
struct Role {
    /// "worker" (part 1) or "holder" (part 3).
    role: String,
    /// The lock: "mutex", "semaphore1", "semaphore3", "multi", "cluster",
    /// "redlock".
    kind: String,
    /// The lock's node(s); for "cluster" the cluster's masters.
    nodes: Vec<String>,
    /// The server with the log (part 1) or the fenced resource (part 3).
    aux: String,
}

impl Role {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.role,
            self.kind,
            self.nodes.join(","),
            self.aux
        )
    }

    /// The role of this process, if it is a child.
    fn of_this_process() -> Option<Role> {
        let spec = std::env::var(ROLE_ENV).ok()?;
        let parts: Vec<&str> = spec.split('|').collect();
        let [role, kind, nodes, aux] = parts[..] else {
            panic!("malformed {ROLE_ENV}: {spec:?}");
        };
        Some(Role {
            role: role.to_owned(),
            kind: kind.to_owned(),
            nodes: nodes.split(',').map(str::to_owned).collect(),
            aux: aux.to_owned(),
        })
    }

    /// Runs this child's part.
    fn run(self) {
        let rt = runtime();
        match self.role.as_str() {
            "worker" => rt.block_on(worker(self)),
            "holder" => rt.block_on(paused_holder(self)),
            other => panic!("unknown role {other}"),
        }
    }
}

/// Child processes, killed (SIGKILL works on stopped ones too) and reaped
/// when dropped, so a failing test leaves none behind.
struct Children(Vec<Child>);

impl Children {
    /// Starts `count` copies of this binary running only `test`, as `role`.
    fn spawn(test: &str, role: &Role, count: usize, piped: bool) -> Children {
        let exe = std::env::current_exe().expect("the test binary");
        let mut children = Children(Vec::new());
        for _ in 0..count {
            let (stdin, stdout) = if piped {
                (Stdio::piped(), Stdio::piped())
            } else {
                (Stdio::null(), Stdio::null())
            };
            let child = Command::new(&exe)
                .args(["--exact", test, "--nocapture", "--test-threads=1"])
                .env(ROLE_ENV, role.encode())
                .stdin(stdin)
                .stdout(stdout)
                .spawn()
                .expect("spawn a child process");
            children.0.push(child);
        }
        children
    }

    /// Fails if a child already ended unsuccessfully (a worker panicked):
    /// waiting on it any longer would only time out.
    fn check_alive(&mut self) {
        for child in &mut self.0 {
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(status.success(), "child {} failed: {status}", child.id());
            }
        }
    }

    /// Waits (bounded) for every child to exit successfully.
    fn wait_all(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        for child in &mut self.0 {
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    assert!(status.success(), "child {} failed: {status}", child.id());
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "child {} still running after {within:?}",
                    child.id()
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A plain connection for the aux server, allowed to block in `BLPOP`
/// (redis-rs answers "timed out" after 500 ms by default).
async fn aux_connection(url: &str) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(TICKET_WAIT_SECS + 10)));
    redis::Client::open(url)
        .expect("aux url")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect to the aux server")
}

/// A backend that reconnects by itself after its node restarts.
async fn reconnecting(url: &str) -> RedisRsBackend<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(100))
        .set_connection_timeout(Some(Duration::from_millis(500)));
    let client = redis::Client::open(url).expect("node url");
    let manager = ConnectionManager::new_with_config(client, config)
        .await
        .expect("connect to a node");
    RedisRsBackend::new(manager)
}

async fn connect(url: &str) -> RedisRsBackend {
    RedisRsBackend::connect(url).await.expect("connect")
}

// ---------------------------------------------------------------------------
// Part 1: worker processes append their tokens to a log
// ---------------------------------------------------------------------------

fn worker_options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(Duration::from_secs(3))
        .acquire_timeout(SETTLE)
        .command_timeout(Duration::from_millis(500))
        .build()
        .expect("valid options")
}

/// One worker process: acquisitions while there are "go" tickets.
async fn worker(role: Role) {
    let mut aux = aux_connection(&role.aux).await;
    let options = worker_options();
    let issued = match role.kind.as_str() {
        "mutex" => {
            let lock = Mutex::with_options(connect(&role.nodes[0]).await, KEY, options).unwrap();
            rounds(&mut aux, || lock.acquire(), true).await
        }
        "semaphore1" | "semaphore3" => {
            let limit = if role.kind == "semaphore1" { 1 } else { 3 };
            let backend = connect(&role.nodes[0]).await;
            let lock = Semaphore::with_options(backend, KEY, limit, options).unwrap();
            rounds(&mut aux, || lock.acquire(), true).await
        }
        "multi" => {
            // 2 permits of 3: one holder at a time.
            let backend = connect(&role.nodes[0]).await;
            let lock = MultiSemaphore::with_options(backend, KEY, 3, 2, options).unwrap();
            rounds(&mut aux, || lock.acquire(), true).await
        }
        "cluster" => {
            let client = ClusterClient::builder(role.nodes.clone())
                .connection_timeout(Duration::from_millis(500))
                .build()
                .expect("cluster urls");
            let conn = client.get_async_connection().await.expect("cluster");
            let backend = RedisRsBackend::new(conn);
            let lock = Mutex::with_options(backend, CLUSTER_KEY, options).unwrap();
            rounds(&mut aux, || lock.acquire(), true).await
        }
        "redlock" => {
            let mut nodes = Vec::new();
            for url in &role.nodes {
                nodes.push(reconnecting(url).await);
            }
            let lock = RedlockMutex::with_options(nodes, KEY, options).unwrap();
            // A release meeting the crash may report the dead node.
            rounds(&mut aux, || lock.acquire(), false).await
        }
        other => panic!("unknown lock kind {other}"),
    };
    if !issued.is_empty() {
        let _: i64 = redis::cmd("RPUSH")
            .arg(ISSUED)
            .arg(&issued)
            .query_async(&mut aux)
            .await
            .expect("RPUSH issued");
    }
    assert!(
        redsem_core::flush(Duration::from_secs(10)).await,
        "background releases did not finish"
    );
}

/// Acquire, append the token, release, once per "go" ticket; the tokens
/// this worker was given.
async fn rounds<F, Fut>(aux: &mut MultiplexedConnection, acquire: F, strict: bool) -> Vec<u64>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<LockGuard, LockError>>,
{
    let _: i64 = redis::cmd("INCR")
        .arg(READY)
        .query_async(aux)
        .await
        .expect("INCR ready");
    let mut issued = Vec::new();
    loop {
        let ticket: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(TICKETS)
            .arg(TICKET_WAIT_SECS)
            .query_async(aux)
            .await
            .expect("BLPOP ticket");
        let (_, ticket) = ticket.expect("no ticket in time");
        if ticket == "stop" {
            return issued;
        }
        let guard = acquire().await.unwrap_or_else(|e| panic!("acquire: {e}"));
        let token = guard.fencing_token();
        // The critical section: the append, and a little "work" so that
        // the other workers pile up waiting.
        let _: i64 = redis::cmd("RPUSH")
            .arg(LOG)
            .arg(token)
            .query_async(aux)
            .await
            .expect("RPUSH log");
        tokio::time::sleep(Duration::from_millis(1)).await;
        // The order of the log is the order of the holds only if this hold
        // lasted past the append.
        assert!(guard.is_acquired(), "hold {token} lost inside its section");
        issued.push(token);
        match guard.release().await {
            Ok(()) => {}
            Err(e) if !strict => eprintln!("release of {token}: {e}"),
            Err(e) => panic!("release of {token}: {e}"),
        }
    }
}

/// The parent side of part 1: `WORKERS` worker processes, fed tickets.
struct Run<'a> {
    aux: &'a RedisServer,
    children: Children,
    tickets: usize,
}

impl<'a> Run<'a> {
    /// Starts the workers and waits until all are connected and waiting,
    /// so that the acquisitions contend from the first one.
    fn start(test: &str, kind: &str, nodes: Vec<String>, aux: &'a RedisServer) -> Run<'a> {
        let role = Role {
            role: "worker".into(),
            kind: kind.into(),
            nodes,
            aux: aux.url(),
        };
        let mut run = Run {
            aux,
            children: Children::spawn(test, &role, WORKERS, false),
            tickets: 0,
        };
        wait_for("the workers to connect", SETTLE, || {
            run.children.check_alive();
            int(aux, &["GET", READY]) == WORKERS as i64
        });
        run
    }

    /// Lets `n` more acquisitions happen and waits until they are logged.
    fn acquisitions(&mut self, n: usize) {
        let go = vec!["go"; n];
        command(self.aux, &[&["RPUSH", TICKETS][..], &go].concat());
        self.tickets += n;
        let (aux, target) = (self.aux, self.tickets as i64);
        wait_for("the acquisitions to be logged", SETTLE, || {
            self.children.check_alive();
            int(aux, &["LLEN", LOG]) >= target
        });
    }

    /// Stops the workers; the log (in append order) and the issued tokens
    /// (sorted).
    fn finish(mut self) -> (Vec<u64>, Vec<u64>) {
        let stop = vec!["stop"; WORKERS];
        command(self.aux, &[&["RPUSH", TICKETS][..], &stop].concat());
        self.children.wait_all(SETTLE);
        let mut issued = list(self.aux, ISSUED);
        issued.sort_unstable();
        (list(self.aux, LOG), issued)
    }
}

/// Every issued token is in the log exactly once and nothing else is;
/// with `ordered`, the log strictly increases.
#[track_caller]
fn check_log(kind: &str, log: &[u64], issued: &[u64], ordered: bool) {
    assert_eq!(log.len(), ACQUISITIONS, "{kind}: log {log:?}");
    let mut sorted = log.to_vec();
    sorted.sort_unstable();
    let mut unique = sorted.clone();
    unique.dedup();
    assert_eq!(unique, sorted, "{kind}: a token was handed out twice");
    assert_eq!(sorted, issued, "{kind}: the log is not the tokens issued");
    assert!(log.iter().all(|&t| t >= 1), "{kind}: token 0 in {log:?}");
    if ordered {
        if let Some(w) = log.windows(2).find(|w| w[0] >= w[1]) {
            panic!(
                "{kind}: token {} acquired after token {}: {log:?}",
                w[1], w[0]
            );
        }
    }
}

fn one_node_run(test: &str, kind: &str, ordered: bool) {
    let node = RedisServer::start().expect("redis-server");
    let aux = RedisServer::start().expect("redis-server");
    let mut run = Run::start(test, kind, vec![node.url()], &aux);
    run.acquisitions(ACQUISITIONS);
    let (log, issued) = run.finish();
    check_log(kind, &log, &issued, ordered);
}

/// Runs the calling test's child part, if this process is a child.
macro_rules! child_part {
    ($test:literal) => {
        if let Some(role) = Role::of_this_process() {
            return role.run();
        }
    };
}

#[test]
fn mutex_tokens_increase_across_processes() {
    child_part!("mutex_tokens_increase_across_processes");
    one_node_run("mutex_tokens_increase_across_processes", "mutex", true);
}

#[test]
fn semaphore_of_one_tokens_increase_across_processes() {
    child_part!("semaphore_of_one_tokens_increase_across_processes");
    one_node_run(
        "semaphore_of_one_tokens_increase_across_processes",
        "semaphore1",
        true,
    );
}

/// Up to 3 holders at once: the order of appends means nothing, but no two
/// holders, at once or not, may share a token.
#[test]
fn semaphore_of_three_tokens_are_unique_across_processes() {
    child_part!("semaphore_of_three_tokens_are_unique_across_processes");
    one_node_run(
        "semaphore_of_three_tokens_are_unique_across_processes",
        "semaphore3",
        false,
    );
}

#[test]
fn multi_semaphore_tokens_increase_across_processes() {
    child_part!("multi_semaphore_tokens_increase_across_processes");
    one_node_run(
        "multi_semaphore_tokens_increase_across_processes",
        "multi",
        true,
    );
}

/// Its own key: the cluster is shared by the binary (only this test uses
/// it, but its workers must not start clusters of their own).
const CLUSTER_KEY: &str = "fenced-on-the-cluster";

#[test]
fn cluster_mutex_tokens_increase_across_processes() {
    child_part!("cluster_mutex_tokens_increase_across_processes");
    let cluster = redsem_testing::shared_cluster().expect("the shared cluster");
    let aux = RedisServer::start().expect("redis-server");
    let test = "cluster_mutex_tokens_increase_across_processes";
    let mut run = Run::start(test, "cluster", cluster.urls(), &aux);
    run.acquisitions(ACQUISITIONS);
    let (log, issued) = run.finish();
    check_log("cluster Mutex", &log, &issued, true);
    // The counter is where the acquire script keeps it, in the lock's slot.
    let counter = format!("{{mutex:{CLUSTER_KEY}}}:fence");
    let owner = cluster
        .node_for_key(&counter)
        .expect("the counter's master");
    let last = log[log.len() - 1].to_string();
    assert_eq!(get(owner, &counter), Some(last));
}

/// AOF on, every write synced before it is answered: a node killed with
/// SIGKILL comes back with every write it acknowledged.
const AOF: [&str; 4] = ["--appendonly", "yes", "--appendfsync", "always"];
/// Neither AOF nor RDB: a restarted node is empty.
const NO_PERSISTENCE: [&str; 4] = ["--appendonly", "no", "--save", ""];

/// A third of the acquisitions with every node up, a third with node 2
/// crashed, a third after it came back from its AOF, behind the others'
/// counters. For that last third node 3 is crashed too, so that every
/// quorum has to include the restarted node: its counter is in every vote,
/// not just in the ones it happens to answer first.
#[test]
fn redlock_tokens_increase_across_processes_and_a_node_restart() {
    child_part!("redlock_tokens_increase_across_processes_and_a_node_restart");
    let test = "redlock_tokens_increase_across_processes_and_a_node_restart";
    let mut nodes: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_with(&AOF).expect("redis-server"))
        .collect();
    let aux = RedisServer::start().expect("redis-server");
    let urls = nodes.iter().map(RedisServer::url).collect();
    let (lock_key, counter) = ("mutex:fenced", "{mutex:fenced}:fence");
    let count = |node: &RedisServer| -> u64 { get(node, counter).unwrap().parse().unwrap() };
    let mut run = Run::start(test, "redlock", urls, &aux);
    let third = ACQUISITIONS / 3;
    run.acquisitions(third);

    let at_crash = count(&nodes[1]);
    nodes[1].stop().expect("crash node 2");
    run.acquisitions(third);
    let ahead = count(&nodes[0]);
    assert!(
        at_crash < ahead,
        "node 1 went on counting while node 2 was down"
    );

    nodes[1].start_again().expect("restart node 2");
    // Everything node 2 acknowledged survived. (It may go beyond: calls
    // the workers made while it was down, each still within its command
    // timeout, can reach it once it is back.)
    let kept = count(&nodes[1]);
    assert!(kept >= at_crash, "node 2 lost writes: {kept} < {at_crash}");
    // A hold that came back with it (from the AOF, or from such a late
    // call) was released elsewhere long ago: node 2 answers "held" until
    // it expires. Waited for here, so the last third need not.
    wait_for("node 2's stale hold to go", SETTLE, || {
        int(&nodes[1], &["EXISTS", lock_key]) == 0
    });
    nodes[2].stop().expect("crash node 3");
    run.acquisitions(ACQUISITIONS - 2 * third);

    let (log, issued) = run.finish();
    check_log("RedlockMutex", &log, &issued, true);
    // Node 2 was in every quorum of the last third: its counter reached
    // the last token (by its own vote, or raised to it).
    let last = log[log.len() - 1];
    let now = count(&nodes[1]);
    assert!(
        now >= last,
        "node 2's counter {now} behind the last token {last}"
    );
}

// ---------------------------------------------------------------------------
// Part 2: Redlock restarts with and without persistence
// ---------------------------------------------------------------------------

/// Holds of instance A before the restarts.
const A_ROUNDS: u64 = 3;

/// The tokens of A's last hold and of B's hold after this arrangement:
///
/// - A holds `A_ROUNDS` times while node 3 is down: nodes 1 and 2 count
///   to `A_ROUNDS`; A writes the resource with its last token;
/// - node 1 goes down, node 2 is killed and restarted (with `persistence`),
///   node 3 comes up: it missed all of A's holds;
/// - a new instance B (no memory of A's tokens) acquires once: its quorum
///   can only be nodes 2 and 3, and it writes the resource.
///
/// Every precondition is asserted, so nothing else can explain the tokens.
fn redlock_restart(persistence: &[&str], keeps_data: bool) -> (u64, u64, FencedWrite) {
    let mut nodes: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_with(persistence).expect("redis-server"))
        .collect();
    let resource_server = RedisServer::start().expect("redis-server");
    let (lock_key, counter) = ("mutex:fenced", "{mutex:fenced}:fence");
    // Short: releases left to retry on a down node end with the hold.
    let options = LockOptions::builder()
        .lock_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let rt = runtime();
    rt.block_on(async {
        let resource = FencedResource::new(RESOURCE);
        let store = connect(&resource_server.url()).await;
        let mut a_nodes = Vec::new();
        for node in &nodes {
            a_nodes.push(reconnecting(&node.url()).await);
        }
        // B's client for node 1 connects while node 1 is still up.
        let b_node_1 = reconnecting(&nodes[0].url()).await;

        nodes[2].stop().unwrap();
        let a = RedlockMutex::with_options(a_nodes, KEY, options.clone()).unwrap();
        let mut last_a = 0;
        for round in 1..=A_ROUNDS {
            let guard = a.acquire().await.unwrap();
            assert_eq!(guard.fencing_token(), round);
            last_a = guard.fencing_token();
            if round == A_ROUNDS {
                let wrote = resource.write(&store, last_a, "A").await.unwrap();
                assert_eq!(wrote, FencedWrite::Written);
            }
            guard.release().await.unwrap();
        }
        // A's release retries for node 3 run in the background: let them
        // end before node 3 comes back.
        assert!(redsem_core::flush(Duration::from_secs(10)).await);
        drop(a);
        for node in &nodes[..2] {
            let on_node = get(node, counter).map(|c| c.parse::<u64>().unwrap());
            assert_eq!(on_node, Some(A_ROUNDS), "A's counter");
            assert_eq!(get(node, lock_key), None, "A released");
        }

        nodes[0].stop().unwrap();
        nodes[1].start_again().unwrap(); // SIGKILL, then the same dir
        nodes[2].start_again().unwrap();
        let expected = keeps_data.then(|| A_ROUNDS.to_string());
        assert_eq!(get(&nodes[1], counter), expected, "node 2 after restart");
        assert_eq!(get(&nodes[2], counter), None, "node 3 missed A's holds");
        assert!(!nodes[0].is_running());

        let b_nodes = vec![
            b_node_1,
            reconnecting(&nodes[1].url()).await,
            reconnecting(&nodes[2].url()).await,
        ];
        let b = RedlockMutex::with_options(b_nodes, KEY, options).unwrap();
        let guard = b.try_acquire().await.unwrap().expect("nodes 2 and 3 free");
        let token_b = guard.fencing_token();
        for node in &nodes[1..] {
            assert_eq!(get(node, lock_key).as_deref(), Some(guard.identifier()));
            let on_node = get(node, counter).map(|c| c.parse::<u64>().unwrap());
            assert_eq!(on_node, Some(token_b), "B's token confirmed on its quorum");
        }
        let b_wrote = resource.write(&store, token_b, "B").await.unwrap();
        guard.release().await.unwrap();
        assert!(redsem_core::flush(Duration::from_secs(10)).await);
        (last_a, token_b, b_wrote)
    })
}

#[test]
fn redlock_restart_from_aof_keeps_tokens_increasing() {
    let (a, b, b_wrote) = redlock_restart(&AOF, true);
    assert_eq!(a, A_ROUNDS);
    assert!(b > a, "B's token {b} must be newer than A's {a}");
    assert_eq!(b, a + 1, "node 2's kept counter, plus one");
    assert_eq!(b_wrote, FencedWrite::Written);
}

/// The weakness, pinned down: Redlock's fencing tokens need nodes that
/// keep their data across a restart. If this starts failing because B's
/// token is newer, the library has changed; update this test and the docs
/// together.
#[test]
fn redlock_restart_without_persistence_repeats_old_tokens() {
    let (a, b, b_wrote) = redlock_restart(&NO_PERSISTENCE, false);
    assert_eq!(a, A_ROUNDS);
    assert!(
        b <= a,
        "B's token {b}: counters were expected to start over"
    );
    assert_eq!(b, 1, "two empty counters: the first token again");
    // The legitimate new holder is fenced out by the old one's write.
    assert_eq!(b_wrote, FencedWrite::Stale { newest: a });
}

// ---------------------------------------------------------------------------
// Part 3: a holder paused past its lock timeout
// ---------------------------------------------------------------------------

const PAUSED_LOCK_TIMEOUT: Duration = Duration::from_millis(500);

fn holder_options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(PAUSED_LOCK_TIMEOUT) // refreshed every third of it
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The child: acquire, print the token, wait for the go line, then write
/// the resource with that (by now old) token and print the outcome.
async fn paused_holder(role: Role) {
    let options = holder_options();
    let guard = match role.kind.as_str() {
        "mutex" => {
            let lock = Mutex::with_options(connect(&role.nodes[0]).await, KEY, options);
            lock.unwrap().acquire().await
        }
        "semaphore1" => {
            let backend = connect(&role.nodes[0]).await;
            let lock = Semaphore::with_options(backend, KEY, 1, options);
            lock.unwrap().acquire().await
        }
        "redlock" => {
            let mut nodes = Vec::new();
            for url in &role.nodes {
                nodes.push(connect(url).await);
            }
            let lock = RedlockMutex::with_options(nodes, KEY, options);
            lock.unwrap().acquire().await
        }
        other => panic!("unknown lock kind {other}"),
    }
    .expect("acquire");
    let token = guard.fencing_token();
    let store = connect(&role.aux).await;
    println!("{TOKEN_LINE}{token}");

    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("read stdin");
    assert_eq!(line.trim(), "go", "unexpected line from the parent");
    let resource = FencedResource::new(RESOURCE);
    let wrote = resource.write(&store, token, "A").await.expect("write");
    let outcome = match wrote {
        FencedWrite::Written => "written".to_owned(),
        FencedWrite::Stale { newest } => format!("stale {newest}"),
    };
    println!("{WRITE_LINE}{outcome}");
    // The hold is gone; the release only says so.
    let _ = guard.release().await;
}

/// The child's stdout lines, read on a thread so that waits are bounded.
fn lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// The text after `marker` on the next line that has it (the test harness
/// prints its own lines too).
fn read_marked(lines: &Receiver<String>, marker: &str) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no {marker:?} line from the holder: {e}"));
        if let Some((_, rest)) = line.split_once(marker) {
            return rest.trim().to_owned();
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: signals our own child process, which has not been reaped.
    let done = unsafe { libc::kill(pid, signal) };
    assert_eq!(done, 0, "kill({pid}, {signal})");
}

/// The state letter of `/proc/<pid>/stat` ('T' when stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.trim_start().chars().next()
}

fn paused_holder_is_fenced_out(test: &str, kind: &str, lock_key: &str, node_count: usize) {
    let nodes: Vec<RedisServer> = (0..node_count)
        .map(|_| RedisServer::start().expect("redis-server"))
        .collect();
    let resource_server = RedisServer::start().expect("redis-server");
    let role = Role {
        role: "holder".into(),
        kind: kind.into(),
        nodes: nodes.iter().map(RedisServer::url).collect(),
        aux: resource_server.url(),
    };
    let mut children = Children::spawn(test, &role, 1, true);
    let holder = &mut children.0[0];
    let mut stdin: ChildStdin = holder.stdin.take().expect("piped stdin");
    let lines = lines(holder);
    let token_a: u64 = read_marked(&lines, TOKEN_LINE).parse().unwrap();
    for node in &nodes {
        assert_eq!(int(node, &["EXISTS", lock_key]), 1, "A holds the lock");
    }

    signal(holder, libc::SIGSTOP);
    let pid = holder.id();
    wait_for("the holder to stop", SETTLE, || {
        process_state(pid) == Some('T')
    });
    // Nothing refreshes the hold any more: it expires after its timeout.
    wait_for("A's hold to expire", PAUSED_LOCK_TIMEOUT + SETTLE, || {
        nodes.iter().all(|n| int(n, &["EXISTS", lock_key]) == 0)
    });

    let rt = runtime();
    let resource = FencedResource::new(RESOURCE);
    let (guard_b, token_b) = rt.block_on(async {
        let store = connect(&resource_server.url()).await;
        let options = holder_options();
        let guard = match kind {
            "mutex" => {
                let lock = Mutex::with_options(connect(&nodes[0].url()).await, KEY, options);
                lock.unwrap().try_acquire().await
            }
            "semaphore1" => {
                let backend = connect(&nodes[0].url()).await;
                let lock = Semaphore::with_options(backend, KEY, 1, options);
                lock.unwrap().try_acquire().await
            }
            _ => {
                let mut backends = Vec::new();
                for node in &nodes {
                    backends.push(connect(&node.url()).await);
                }
                let lock = RedlockMutex::with_options(backends, KEY, options);
                lock.unwrap().try_acquire().await
            }
        }
        .unwrap()
        .expect("A's hold expired: B gets the lock");
        let token = guard.fencing_token();
        assert!(token > token_a, "B's token {token} after A's {token_a}");
        let wrote = resource.write(&store, token, "B").await.unwrap();
        assert_eq!(wrote, FencedWrite::Written, "B writes with its token");
        (guard, token)
    });

    signal(holder, libc::SIGCONT);
    writeln!(stdin, "go").expect("write to the holder");
    let late = read_marked(&lines, WRITE_LINE);
    assert_eq!(late, format!("stale {token_b}"), "A's late write");
    children.wait_all(SETTLE);

    rt.block_on(async {
        let store = connect(&resource_server.url()).await;
        let now = resource.read(&store).await.unwrap();
        assert_eq!(now, Some((token_b, "B".to_owned())), "B's write stays");
        guard_b.release().await.unwrap();
    });
}

#[test]
fn paused_mutex_holder_is_fenced_out() {
    child_part!("paused_mutex_holder_is_fenced_out");
    paused_holder_is_fenced_out(
        "paused_mutex_holder_is_fenced_out",
        "mutex",
        "mutex:fenced",
        1,
    );
}

#[test]
fn paused_semaphore_holder_is_fenced_out() {
    child_part!("paused_semaphore_holder_is_fenced_out");
    paused_holder_is_fenced_out(
        "paused_semaphore_holder_is_fenced_out",
        "semaphore1",
        "semaphore:fenced",
        1,
    );
}

#[test]
fn paused_redlock_holder_is_fenced_out() {
    child_part!("paused_redlock_holder_is_fenced_out");
    paused_holder_is_fenced_out(
        "paused_redlock_holder_is_fenced_out",
        "redlock",
        "mutex:fenced",
        3,
    );
}

// ---------------------------------------------------------------------------
// Parent-side Redis helpers
// ---------------------------------------------------------------------------

/// Polls `condition` every 10 ms until it holds; fails after `within`.
#[track_caller]
fn wait_for(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[track_caller]
fn command(server: &RedisServer, args: &[&str]) -> RespValue {
    match server.command(args) {
        Ok(RespValue::Error(e)) => panic!("{args:?}: {e}"),
        Ok(reply) => reply,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// An integer reply, or a string holding one; 0 for nil.
#[track_caller]
fn int(server: &RedisServer, args: &[&str]) -> i64 {
    match command(server, args) {
        RespValue::Integer(i) => i,
        RespValue::Nil => 0,
        reply => reply.as_str().and_then(|s| s.parse().ok()).unwrap(),
    }
}

#[track_caller]
fn get(server: &RedisServer, key: &str) -> Option<String> {
    command(server, &["GET", key]).as_str().map(str::to_owned)
}

#[track_caller]
fn list(server: &RedisServer, key: &str) -> Vec<u64> {
    let reply = command(server, &["LRANGE", key, "0", "-1"]);
    let items = reply.as_array().expect("LRANGE answers an array");
    items
        .iter()
        .map(|item| item.as_str().and_then(|s| s.parse().ok()).unwrap())
        .collect()
}
