//! Part 3: a holder paused past its lock timeout.

use super::*;

pub(crate) const PAUSED_LOCK_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) fn holder_options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(PAUSED_LOCK_TIMEOUT) // refreshed every third of it
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The child: acquire, print the token, wait for the go line, then write
/// the resource with that (by now old) token and print the outcome.
pub(crate) async fn paused_holder(role: Role) {
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
pub(crate) fn lines(child: &mut Child) -> Receiver<String> {
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
pub(crate) fn read_marked(lines: &Receiver<String>, marker: &str) -> String {
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

pub(crate) fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: signals our own child process, which has not been reaped.
    let done = unsafe { libc::kill(pid, signal) };
    assert_eq!(done, 0, "kill({pid}, {signal})");
}

/// The state letter of `/proc/<pid>/stat` ('T' when stopped).
pub(crate) fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.trim_start().chars().next()
}

pub(crate) fn paused_holder_is_fenced_out(
    test: &str,
    kind: &str,
    lock_key: &str,
    node_count: usize,
) {
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
