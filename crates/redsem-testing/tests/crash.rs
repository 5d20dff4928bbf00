//! Servers must die with the test process even when `Drop` never runs.
//!
//! Each test re-runs this test binary as a child with `CHILD_MODE` set; the
//! child runs only `child_entry`, which starts servers, reports them on stdout
//! as `SERVER <pid> <port>` and then dies in the way under test.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use redsem_testing::{shared_cluster, RedisServer};

type TestResult = Result<(), Box<dyn Error>>;

const CHILD_MODE: &str = "REDSEM_TESTING_CHILD_MODE";

/// The child side. Without `CHILD_MODE` (a normal run) it does nothing.
#[test]
fn child_entry() -> TestResult {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return Ok(());
    };
    let report = |server: &RedisServer| -> TestResult {
        let mut out = std::io::stdout();
        let pid = server.pid().ok_or("no pid")?;
        writeln!(
            out,
            "SERVER {pid} {} {}",
            server.port(),
            server.dir().display()
        )?;
        out.flush()?;
        Ok(())
    };
    match mode.as_str() {
        "abort" => {
            let server = RedisServer::start()?;
            report(&server)?;
            std::process::abort();
        }
        "sigkill" => {
            let mut server = RedisServer::start()?;
            server.pause()?; // must die even while stopped
            report(&server)?;
            thread::sleep(Duration::from_secs(60)); // the parent kills us
        }
        "static" => {
            for node in shared_cluster()?.nodes() {
                report(node)?;
            }
            // Return normally: the static cluster is never dropped.
        }
        "no-redis" => {
            let message = match RedisServer::start() {
                Ok(_) => "STARTED".to_owned(),
                Err(e) => e.to_string(),
            };
            writeln!(std::io::stdout(), "ERROR {message}")?;
        }
        other => return Err(format!("unknown child mode {other}").into()),
    }
    Ok(())
}

const CHILD_ARGS: [&str; 4] = ["--exact", "child_entry", "--nocapture", "--test-threads=1"];

/// Starts the child and a thread forwarding its stdout lines.
fn spawn_child(
    mode: &str,
    path: Option<&str>,
) -> Result<(Child, Receiver<String>), Box<dyn Error>> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(CHILD_ARGS)
        .env(CHILD_MODE, mode)
        .stdin(Stdio::null());
    if let Some(path) = path {
        command.env("PATH", path);
    }
    spawn_with_reader(command)
}

fn spawn_with_reader(mut command: Command) -> Result<(Child, Receiver<String>), Box<dyn Error>> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}

/// A server reported by the child.
struct Reported {
    pid: u32,
    port: u16,
    /// Its temp dir; the child cannot remove it, so the test does.
    dir: PathBuf,
}

/// Collects `count` `SERVER <pid> <port> <dir>` lines (bounded).
fn servers(rx: &Receiver<String>, count: usize) -> Result<Vec<Reported>, Box<dyn Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = Vec::new();
    while found.len() < count {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(timeout)?;
        // libtest may have printed "test child_entry ... " on the same line.
        if let Some((_, rest)) = line.split_once("SERVER ") {
            let mut fields = rest.splitn(3, ' ');
            let (Some(pid), Some(port), Some(dir)) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("bad SERVER line {line:?}").into());
            };
            found.push(Reported {
                pid: pid.parse()?,
                port: port.parse()?,
                dir: PathBuf::from(dir),
            });
        }
    }
    Ok(found)
}

fn wait_child(child: &mut Child) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            child.kill()?;
            return Err("child did not exit".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn pid_exists(pid: u32) -> bool {
    Command::new("sh")
        .args(["-c", r#"kill -0 "$1" 2>/dev/null"#, "sh"])
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// Asserts that every server disappears (pid gone, port refusing) within 5 s,
/// then removes its temp dir.
fn assert_all_gone(servers: &[Reported]) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(5);
    for &Reported { pid, port, .. } in servers {
        loop {
            let refused = TcpStream::connect(("127.0.0.1", port))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            if refused && !pid_exists(pid) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(
                    format!("redis-server {pid} on port {port} outlived its test process").into(),
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    for server in servers {
        std::fs::remove_dir_all(&server.dir)?;
    }
    Ok(())
}

#[test]
fn server_dies_when_the_test_process_aborts() -> TestResult {
    let (mut child, rx) = spawn_child("abort", None)?;
    let found = servers(&rx, 1)?;
    wait_child(&mut child)?;
    assert_all_gone(&found)
}

#[test]
fn paused_server_dies_when_the_test_process_is_killed() -> TestResult {
    let (mut child, rx) = spawn_child("sigkill", None)?;
    let found = servers(&rx, 1)?;
    assert!(pid_exists(found[0].pid));
    child.kill()?; // SIGKILL
    wait_child(&mut child)?;
    assert_all_gone(&found)
}

#[test]
fn static_cluster_dies_when_the_test_process_exits() -> TestResult {
    let (mut child, rx) = spawn_child("static", None)?;
    let found = servers(&rx, 3)?;
    wait_child(&mut child)?;
    assert_all_gone(&found)
}

#[test]
fn missing_redis_server_is_a_helpful_error() -> TestResult {
    let empty = std::env::temp_dir().join("redsem-empty-path-for-tests");
    std::fs::create_dir_all(&empty)?;
    let (mut child, rx) = spawn_child("no-redis", empty.to_str())?;
    let line = loop {
        let line = rx.recv_timeout(Duration::from_secs(30))?;
        if let Some((_, message)) = line.split_once("ERROR ") {
            break message.to_owned();
        }
    };
    wait_child(&mut child)?;
    assert_eq!(
        line,
        "redis-server was not found on PATH; install it (Debian/Ubuntu: \
         `sudo apt-get install redis-server`, macOS: `brew install redis`)"
    );
    Ok(())
}

/// A paused server's process group gets orphaned (like `timeout cargo test`
/// exiting): the kernel then sends the group SIGHUP + SIGCONT. The wrapper
/// must survive the SIGHUP, or the resumed server would live on forever.
#[test]
fn paused_server_dies_when_its_process_group_is_orphaned() -> TestResult {
    // `sh` leads a new process group, starts the child in it and exits as
    // soon as we close its stdin, which orphans the group.
    let mut command = Command::new("sh");
    command
        .args(["-c", r#""$0" "$@" </dev/null & read -r line"#])
        .arg(std::env::current_exe()?)
        .args(CHILD_ARGS)
        .env(CHILD_MODE, "sigkill")
        .stdin(Stdio::piped())
        .process_group(0);
    let (mut leader, rx) = spawn_with_reader(command)?;
    let found = servers(&rx, 1)?; // the server is paused by now
    drop(leader.stdin.take());
    wait_child(&mut leader)?;
    // What the kernel sends an orphaned group with a stopped member. Some
    // sandboxed kernels (seen on a Firecracker VM) do not, so the test
    // sends it too: what is under test is that the wrapper survives it.
    let group = format!("-{}", leader.id());
    for signal in ["-HUP", "-CONT"] {
        Command::new("kill").args([signal, "--", &group]).status()?;
    }
    assert_all_gone(&found)
}
