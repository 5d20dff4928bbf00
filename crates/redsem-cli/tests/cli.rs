//! The `redsem` binary end to end: real processes against private
//! redis-servers started by redsem-testing (never the Redis on 6379).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redsem_testing::{RedisServer, RespValue};

/// The `redsem` command, with no `$REDSEM_URL` from the environment.
fn redsem() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redsem"));
    cmd.env_remove("REDSEM_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A test's directory for marker files, removed when dropped.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty directory for one test's marker files.
fn scratch(name: &str) -> Scratch {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "redsem-cli-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `cond` until it holds; panics after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` (bounded), returning its status and output.
fn finish(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "redsem did not exit within {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run_to_end(cmd: &mut Command) -> Output {
    finish(cmd.spawn().unwrap(), Duration::from_secs(20))
}

fn code(status: ExitStatus) -> i32 {
    status.code().expect("redsem exited by a signal")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    match server.command(&["GET", key]).unwrap() {
        RespValue::Nil => None,
        other => other.as_str().map(str::to_owned),
    }
}

/// `sh -c script`, with `$1` the scratch directory.
fn sh(dir: &Path, script: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        script.into(),
        "sh".into(),
        dir.display().to_string(),
    ]
}

#[test]
fn a_second_run_waits_for_the_first_and_never_overlaps() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("mutex");
    let log = dir.join("log");
    let script = "echo start >> $1/log; sleep 0.4; echo end >> $1/log";
    let first = redsem()
        .args(["run", "--url", &server.url(), "job", "--"])
        .args(sh(&dir, script))
        .spawn()
        .unwrap();
    wait_until(
        "the first command to start",
        Duration::from_secs(10),
        || read(&log).contains("start"),
    );
    let started = Instant::now();
    let second = redsem()
        .args(["run", "--url", &server.url(), "job", "--"])
        .args(sh(&dir, script))
        .spawn()
        .unwrap();
    let a = finish(first, Duration::from_secs(20));
    let b = finish(second, Duration::from_secs(20));
    assert_eq!(code(a.status), 0, "{}", stderr(&a));
    assert_eq!(code(b.status), 0, "{}", stderr(&b));
    assert_eq!(read(&log), "start\nend\nstart\nend\n");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(get(&server, "mutex:job"), None, "released after the run");
}

#[test]
fn wait_zero_on_a_held_key_exits_75_at_once() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("busy");
    server
        .command(&["SET", "mutex:busy", "someone-else", "PX", "30000"])
        .unwrap();
    let started = Instant::now();
    let out = run_to_end(
        redsem()
            .args(["run", "--url", &server.url(), "--wait", "0", "busy", "--"])
            .args(sh(&dir, "touch $1/ran")),
    );
    assert_eq!(code(out.status), 75, "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains('\r'),
        "no status line when stderr is not a terminal"
    );
    assert!(!dir.join("ran").exists(), "the command must not run");

    // A bounded wait gives up after it, with the same status.
    let started = Instant::now();
    let out = run_to_end(
        redsem()
            .args([
                "run",
                "--url",
                &server.url(),
                "--wait",
                "300ms",
                "busy",
                "--",
            ])
            .args(sh(&dir, "touch $1/ran")),
    );
    assert_eq!(code(out.status), 75, "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!dir.join("ran").exists());
}

#[test]
fn limit_two_lets_exactly_two_run_together() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("limit");
    let script = "echo +1 >> $1/log; sleep 0.6; echo -1 >> $1/log";
    let children: Vec<Child> = (0..3)
        .map(|_| {
            redsem()
                .args(["run", "--url", &server.url(), "--limit", "2", "pool", "--"])
                .args(sh(&dir, script))
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = finish(child, Duration::from_secs(20));
        assert_eq!(code(out.status), 0, "{}", stderr(&out));
    }
    let (mut now, mut max) = (0, 0);
    let log = read(&dir.join("log"));
    for line in log.lines() {
        now += line.parse::<i32>().unwrap();
        max = max.max(now);
    }
    assert_eq!(log.lines().count(), 6, "{log}");
    assert_eq!(
        max, 2,
        "at most two at a time, and two did run together: {log}"
    );
    assert_eq!(
        server.command(&["EXISTS", "semaphore:pool"]).unwrap(),
        RespValue::Integer(0)
    );
}

#[test]
fn permits_take_several_slots() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("permits");
    let holder = redsem()
        .args([
            "run",
            "--url",
            &server.url(),
            "--limit",
            "3",
            "--permits",
            "2",
        ])
        .args(["gpu", "--"])
        .args(sh(
            &dir,
            "touch $1/holding; while [ ! -e $1/done ]; do sleep 0.05; done",
        ))
        .spawn()
        .unwrap();
    wait_until("the holder", Duration::from_secs(10), || {
        dir.join("holding").exists()
    });
    // 2 of 3 taken: another 2 do not fit, 1 does.
    let out = run_to_end(
        redsem()
            .args([
                "run",
                "--url",
                &server.url(),
                "--limit",
                "3",
                "--permits",
                "2",
            ])
            .args(["--wait", "0", "gpu", "--", "true"]),
    );
    assert_eq!(code(out.status), 75, "{}", stderr(&out));
    let out = run_to_end(
        redsem()
            .args(["run", "--url", &server.url(), "--limit", "3", "--wait", "0"])
            .args(["gpu", "--", "true"]),
    );
    assert_eq!(code(out.status), 0, "{}", stderr(&out));
    let status = run_to_end(redsem().args([
        "status",
        "--url",
        &server.url(),
        "--limit",
        "3",
        "--json",
        "gpu",
    ]));
    assert!(
        stdout(&status).contains("\"permits\":2"),
        "{}",
        stdout(&status)
    );
    std::fs::write(dir.join("done"), "").unwrap();
    let out = finish(holder, Duration::from_secs(20));
    assert_eq!(code(out.status), 0, "{}", stderr(&out));
}

#[test]
fn a_lost_lock_stops_the_command_with_sigterm_and_exits_70() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("lost");
    let script = "trap 'echo term >> $1/marker; exit 0' TERM; \
                  echo started >> $1/marker; \
                  while true; do sleep 0.05; done";
    let child = redsem()
        .args(["run", "--url", &server.url(), "--lock-timeout", "1s"])
        .args(["--kill-after", "10s", "doomed", "--"])
        .args(sh(&dir, script))
        .spawn()
        .unwrap();
    wait_until("the command to start", Duration::from_secs(10), || {
        read(&dir.join("marker")).contains("started")
    });
    server.command(&["DEL", "mutex:doomed"]).unwrap();
    let started = Instant::now();
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(code(out.status), 70, "{}", stderr(&out));
    assert_eq!(read(&dir.join("marker")), "started\nterm\n");
    // Found by the next refresh (a third of the lock timeout), not after
    // --kill-after.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(stderr(&out).contains("Lost"), "{}", stderr(&out));
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_kill_after() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("stubborn");
    let script = "trap '' TERM; echo $$ > $1/pid; while true; do sleep 0.05; done";
    let child = redsem()
        .args(["run", "--url", &server.url(), "--lock-timeout", "1s"])
        .args(["--kill-after", "700ms", "stubborn", "--"])
        .args(sh(&dir, script))
        .spawn()
        .unwrap();
    wait_until("the command to start", Duration::from_secs(10), || {
        read(&dir.join("pid")).ends_with('\n')
    });
    let pid = read(&dir.join("pid")).trim().to_owned();
    server.command(&["DEL", "mutex:stubborn"]).unwrap();
    let deleted = Instant::now();
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(code(out.status), 70, "{}", stderr(&out));
    assert!(
        deleted.elapsed() >= Duration::from_millis(700),
        "SIGKILL came before --kill-after"
    );
    assert!(stderr(&out).contains("SIGKILL"), "{}", stderr(&out));
    // redsem reaped it: the process is gone.
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn the_commands_exit_status_passes_through() {
    let server = RedisServer::start().unwrap();
    let out = run_to_end(redsem().args([
        "run",
        "--url",
        &server.url(),
        "k",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]));
    assert_eq!(code(out.status), 3);
    let out = run_to_end(redsem().args([
        "run",
        "--url",
        &server.url(),
        "k",
        "--",
        "sh",
        "-c",
        "kill -KILL $$",
    ]));
    assert_eq!(code(out.status), 137);
    let out = run_to_end(redsem().args(["run", "--url", &server.url(), "k", "--", "true"]));
    assert_eq!(code(out.status), 0);
    let out = run_to_end(redsem().args([
        "run",
        "--url",
        &server.url(),
        "k",
        "--",
        "/nonexistent/redsem-test-command",
    ]));
    assert_eq!(code(out.status), 127, "{}", stderr(&out));
    assert_eq!(get(&server, "mutex:k"), None);
}

#[test]
fn the_command_sees_key_and_identifier_and_stdio_passes_through() {
    let server = RedisServer::start().unwrap();
    let mut child = redsem()
        .stdin(Stdio::piped())
        .args(["run", "--url", &server.url(), "env-key", "--", "sh", "-c"])
        .arg("read line; echo \"$REDSEM_KEY $REDSEM_IDENTIFIER $line\"; echo oops >&2")
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
    }
    let out = finish(child, Duration::from_secs(20));
    assert_eq!(code(out.status), 0, "{}", stderr(&out));
    let line = stdout(&out);
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{line}");
    assert_eq!(fields[0], "env-key");
    assert_eq!(fields[1].len(), 36, "a UUID: {line}");
    assert_eq!(fields[2], "hello");
    assert!(stderr(&out).contains("oops"));
}

#[test]
fn sigterm_to_redsem_is_forwarded_and_the_lock_released() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("forward");
    let script = "trap 'echo term >> $1/marker; exit 5' TERM; \
                  echo started >> $1/marker; \
                  while true; do sleep 0.05; done";
    let child = redsem()
        .args(["run", "--url", &server.url(), "fwd", "--"])
        .args(sh(&dir, script))
        .spawn()
        .unwrap();
    wait_until("the command to start", Duration::from_secs(10), || {
        read(&dir.join("marker")).contains("started")
    });
    assert!(get(&server, "mutex:fwd").is_some());
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(
        code(out.status),
        5,
        "the command's status: {}",
        stderr(&out)
    );
    assert_eq!(read(&dir.join("marker")), "started\nterm\n");
    assert_eq!(get(&server, "mutex:fwd"), None, "released on exit");
}

#[test]
fn redlock_works_with_one_of_three_nodes_down() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start().unwrap()).collect();
    let mut servers = servers;
    servers[2].stop().unwrap();
    let dir = scratch("redlock");
    let mut args: Vec<String> = vec!["run".into()];
    for s in &servers {
        args.push("--url".into());
        args.push(s.url());
    }
    let child = redsem()
        .args(&args)
        .args(["report", "--"])
        .args(sh(
            &dir,
            "touch $1/ran; while [ ! -e $1/done ]; do sleep 0.05; done",
        ))
        .spawn()
        .unwrap();
    wait_until("the command to start", Duration::from_secs(10), || {
        dir.join("ran").exists()
    });
    let holder = get(&servers[0], "mutex:report").expect("held on node 1");
    assert_eq!(get(&servers[1], "mutex:report"), Some(holder.clone()));

    let mut status: Vec<String> = vec!["status".into()];
    status.extend(args[1..].iter().cloned());
    let shown = run_to_end(redsem().args(&status).args(["--json", "report"]));
    assert_eq!(code(shown.status), 0, "{}", stderr(&shown));
    let json = stdout(&shown);
    assert_eq!(json.matches(&holder).count(), 2, "{json}");
    assert_eq!(json.matches("\"error\"").count(), 1, "{json}");

    std::fs::write(dir.join("done"), "").unwrap();
    let out = finish(child, Duration::from_secs(20));
    assert_eq!(code(out.status), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("going on with the other nodes"));
    assert_eq!(get(&servers[0], "mutex:report"), None);
}

#[test]
fn an_unreachable_redis_exits_69_with_a_clear_message() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}");
    let dir = scratch("unreachable");
    let out = run_to_end(
        redsem()
            .args(["run", "--url", &url, "k", "--"])
            .args(sh(&dir, "touch $1/ran")),
    );
    assert_eq!(code(out.status), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot reach Redis at {url}")),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("ran").exists());
    // From $REDSEM_URL too, and for status.
    let out = run_to_end(redsem().env("REDSEM_URL", &url).args(["status", "k"]));
    assert_eq!(code(out.status), 69, "{}", stderr(&out));
    // Redlock with two of three down has no quorum.
    let server = RedisServer::start().unwrap();
    let out = run_to_end(redsem().args([
        "run",
        "--url",
        &server.url(),
        "--url",
        &url,
        "--url",
        &url,
        "k",
        "--",
        "true",
    ]));
    assert_eq!(code(out.status), 69, "{}", stderr(&out));
}

#[test]
fn status_shows_holders_and_their_ttl() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let out = run_to_end(redsem().args(["status", "--url", &url, "jobs"]));
    assert_eq!(code(out.status), 0);
    assert!(
        stdout(&out).contains("mutex:jobs: free"),
        "{}",
        stdout(&out)
    );

    server
        .command(&["SET", "mutex:jobs", "holder-1", "PX", "5000"])
        .unwrap();
    let out = run_to_end(redsem().args(["status", "--url", &url, "jobs"]));
    let text = stdout(&out);
    assert!(text.contains("holder-1") && text.contains("ttl "), "{text}");
    let out = run_to_end(redsem().args(["status", "--url", &url, "--json", "jobs"]));
    let json = stdout(&out);
    assert!(json.contains("\"identifier\":\"holder-1\""), "{json}");
    let ttl: i64 = json
        .split("\"ttl_ms\":")
        .nth(1)
        .and_then(|s| s.split('}').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5000).contains(&ttl), "{json}");

    // A semaphore: scores are acquire times; multi-semaphore members are
    // grouped by identifier.
    let now = server.command(&["TIME"]).unwrap();
    let now = now.as_array().unwrap()[0].as_str().unwrap().to_owned() + "000";
    server
        .command(&[
            "ZADD",
            "semaphore:pool",
            &now,
            "big_0",
            &now,
            "big_1",
            &now,
            "small",
        ])
        .unwrap();
    let out = run_to_end(redsem().args([
        "status",
        "--url",
        &url,
        "--limit",
        "4",
        "--lock-timeout",
        "30s",
        "pool",
    ]));
    let text = stdout(&out);
    assert!(text.contains("3 of 4 slots held"), "{text}");
    assert!(text.contains("big  2 permits"), "{text}");
    assert!(text.contains("small  1 permit "), "{text}");
}

#[test]
fn bad_usage_exits_64() {
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["run", "k"],
        &["run", "--wait", "10", "k", "--", "true"],
        &["run", "--wait", "10x", "k", "--", "true"],
        &["run", "--lock-timeout", "0", "k", "--", "true"],
        &["run", "--limit", "0", "k", "--", "true"],
        &["run", "--permits", "2", "k", "--", "true"],
        &["run", "--limit", "2", "--permits", "3", "k", "--", "true"],
        &["run", "--no-such-option", "k", "--", "true"],
        &[
            "run",
            "--url",
            "redis://127.0.0.1:1",
            "--url",
            "redis://127.0.0.1:2",
            "k",
            "--",
            "true",
        ],
        &["run", "--url", "nonsense://x", "k", "--", "true"],
        &["status"],
    ];
    for args in cases {
        let out = run_to_end(redsem().args(*args));
        assert_eq!(code(out.status), 64, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?} says why");
    }
    let out = run_to_end(redsem().args([
        "run",
        "--url",
        "redis://127.0.0.1:1",
        "--url",
        "redis://127.0.0.1:2",
        "k",
        "--",
        "true",
    ]));
    assert!(stderr(&out).contains("3 or more independent nodes"));
    let out = run_to_end(redsem().args(["run", "--wait", "10x", "k", "--", "true"]));
    assert!(stderr(&out).contains("unknown unit"), "{}", stderr(&out));
    // Help is not an error.
    let out = run_to_end(redsem().args(["run", "--help"]));
    assert_eq!(code(out.status), 0);
    assert!(stdout(&out).contains("75"), "exit statuses in --help");
}

#[test]
fn a_signal_while_waiting_gives_up_without_running_the_command() {
    let server = RedisServer::start().unwrap();
    let dir = scratch("interrupted");
    server
        .command(&["SET", "mutex:waiting", "someone-else", "PX", "30000"])
        .unwrap();
    let child = redsem()
        .args(["run", "-v", "--url", &server.url(), "waiting", "--"])
        .args(sh(&dir, "touch $1/ran"))
        .spawn()
        .unwrap();
    // Connected (2 clients: redsem and this test's) and so waiting.
    wait_until("redsem to connect", Duration::from_secs(10), || {
        server
            .command(&["CLIENT", "LIST"])
            .unwrap()
            .as_str()
            .map_or(0, |list| list.lines().count())
            >= 2
    });
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(code(out.status), 130, "{}", stderr(&out));
    assert!(!dir.join("ran").exists());
    assert_eq!(
        get(&server, "mutex:waiting").as_deref(),
        Some("someone-else")
    );
}

#[test]
fn on_a_terminal_a_status_line_shows_the_holder_while_waiting() {
    // util-linux `script` gives redsem a pseudo-terminal and copies what it
    // writes there to its stdout.
    let server = RedisServer::start().unwrap();
    server
        .command(&["SET", "mutex:tty", "someone-else", "PX", "1000"])
        .unwrap();
    let line = format!(
        "{} run --url {} tty -- echo ran",
        env!("CARGO_BIN_EXE_redsem"),
        server.url()
    );
    let out = run_to_end(
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("REDSEM_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    assert_eq!(code(out.status), 0, "{}", stderr(&out));
    let tty = stdout(&out);
    assert!(
        tty.contains("\r\x1b[2Kredsem: waiting for tty: held by someone-…, expires in "),
        "{tty:?}"
    );
    assert!(tty.contains("ran"), "{tty:?}");
    // Erased before the command runs.
    let before_ran = &tty[..tty.find("ran").unwrap()];
    assert!(before_ran.ends_with("\r\x1b[2K"), "{tty:?}");

    // -q: no status line.
    server
        .command(&["SET", "mutex:tty", "someone-else", "PX", "500"])
        .unwrap();
    let quiet = format!(
        "{} -q run --url {} tty -- echo ran",
        env!("CARGO_BIN_EXE_redsem"),
        server.url()
    );
    let out = run_to_end(
        Command::new("script")
            .args(["-qec", &quiet, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    assert_eq!(code(out.status), 0, "{}", stderr(&out));
    assert!(!stdout(&out).contains("waiting"), "{:?}", stdout(&out));
}
