//! Child processes.

use super::*;

/// What a child process is asked to do, passed in [`ROLE_ENV`] as
/// `<role>|<kind>|<lock urls, comma separated>|<aux url>`.
#[derive(Debug)]
pub(crate) struct Role {
    /// "worker" (part 1) or "holder" (part 3).
    pub(crate) role: String,
    /// The lock: "mutex", "semaphore1", "semaphore3", "multi", "cluster",
    /// "redlock".
    pub(crate) kind: String,
    /// The lock's node(s); for "cluster" the cluster's masters.
    pub(crate) nodes: Vec<String>,
    /// The server with the log (part 1) or the fenced resource (part 3).
    pub(crate) aux: String,
}

impl Role {
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.role,
            self.kind,
            self.nodes.join(","),
            self.aux
        )
    }

    /// The role of this process, if it is a child.
    pub(crate) fn of_this_process() -> Option<Role> {
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
    pub(crate) fn run(self) {
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
pub(crate) struct Children(pub(crate) Vec<Child>);

impl Children {
    /// Starts `count` copies of this binary running only `test`, as `role`.
    pub(crate) fn spawn(test: &str, role: &Role, count: usize, piped: bool) -> Children {
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
    pub(crate) fn check_alive(&mut self) {
        for child in &mut self.0 {
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(status.success(), "child {} failed: {status}", child.id());
            }
        }
    }

    /// Waits (bounded) for every child to exit successfully.
    pub(crate) fn wait_all(&mut self, within: Duration) {
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

pub(crate) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A plain connection for the aux server, allowed to block in `BLPOP`
/// (redis-rs answers "timed out" after 500 ms by default).
pub(crate) async fn aux_connection(url: &str) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(TICKET_WAIT_SECS + 10)));
    redis::Client::open(url)
        .expect("aux url")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect to the aux server")
}

/// A backend that reconnects by itself after its node restarts.
pub(crate) async fn reconnecting(url: &str) -> RedisRsBackend<ConnectionManager> {
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

pub(crate) async fn connect(url: &str) -> RedisRsBackend {
    RedisRsBackend::connect(url).await.expect("connect")
}
