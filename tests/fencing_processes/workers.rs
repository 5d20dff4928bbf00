//! Part 1: worker processes append their tokens to a log.

use super::*;

pub(crate) fn worker_options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(Duration::from_secs(3))
        .acquire_timeout(SETTLE)
        .command_timeout(Duration::from_millis(500))
        .build()
        .expect("valid options")
}

/// One worker process: acquisitions while there are "go" tickets.
pub(crate) async fn worker(role: Role) {
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
pub(crate) async fn rounds<F, Fut>(
    aux: &mut MultiplexedConnection,
    acquire: F,
    strict: bool,
) -> Vec<u64>
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
pub(crate) struct Run<'a> {
    aux: &'a RedisServer,
    children: Children,
    tickets: usize,
}

impl<'a> Run<'a> {
    /// Starts the workers and waits until all are connected and waiting,
    /// so that the acquisitions contend from the first one.
    pub(crate) fn start(
        test: &str,
        kind: &str,
        nodes: Vec<String>,
        aux: &'a RedisServer,
    ) -> Run<'a> {
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
    pub(crate) fn acquisitions(&mut self, n: usize) {
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
    pub(crate) fn finish(mut self) -> (Vec<u64>, Vec<u64>) {
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
pub(crate) fn check_log(kind: &str, log: &[u64], issued: &[u64], ordered: bool) {
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

pub(crate) fn one_node_run(test: &str, kind: &str, ordered: bool) {
    let node = RedisServer::start().expect("redis-server");
    let aux = RedisServer::start().expect("redis-server");
    let mut run = Run::start(test, kind, vec![node.url()], &aux);
    run.acquisitions(ACQUISITIONS);
    let (log, issued) = run.finish();
    check_log(kind, &log, &issued, ordered);
}

/// Its own key: the cluster is shared by the binary (only this test uses
/// it, but its workers must not start clusters of their own).
pub(crate) const CLUSTER_KEY: &str = "fenced-on-the-cluster";

/// AOF on, every write synced before it is answered: a node killed with
/// SIGKILL comes back with every write it acknowledged.
pub(crate) const AOF: [&str; 4] = ["--appendonly", "yes", "--appendfsync", "always"];
/// Neither AOF nor RDB: a restarted node is empty.
pub(crate) const NO_PERSISTENCE: [&str; 4] = ["--appendonly", "no", "--save", ""];

/// A third of the acquisitions with every node up, a third with node 2
/// crashed, a third after it came back from its AOF, behind the others'
/// counters. For that last third node 3 is crashed too, so that every
/// quorum has to include the restarted node: its counter is in every vote,
/// not just in the ones it happens to answer first.
pub(crate) fn redlock_run_with_a_restart(test: &str) {
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
