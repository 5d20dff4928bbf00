//! Lifecycle tests of a single `RedisServer`.

use std::error::Error;
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use redsem_testing::{RedisServer, RespValue, TestingError};

type TestResult = Result<(), Box<dyn Error>>;

/// True while a process with this pid exists (zombies included).
fn pid_exists(pid: u32) -> bool {
    Command::new("sh")
        .args(["-c", r#"kill -0 "$1" 2>/dev/null"#, "sh"])
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

fn refuses(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}

fn expect_err<T: std::fmt::Debug>(result: Result<T, TestingError>) -> TestingError {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e,
    }
}

#[test]
fn full_lifecycle() -> TestResult {
    let mut server = RedisServer::start()?;
    let port = server.port();
    assert_ne!(port, 6379, "tests must never use the default Redis port");
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(server.addr().to_string(), format!("127.0.0.1:{port}"));
    assert!(server.is_running());

    assert_eq!(server.command(&["PING"])?, RespValue::Simple("PONG".into()));
    assert!(server.command(&["SET", "key", "value"])?.is_ok());
    assert_eq!(server.command(&["GET", "key"])?.as_str(), Some("value"));
    assert!(server
        .command(&["NOSUCHCOMMAND"])?
        .error_message()
        .is_some());

    // Paused: the kernel still accepts the connection, but nothing answers.
    server.pause()?;
    assert!(server.is_paused());
    let started = Instant::now();
    let err = expect_err(server.command_timeout(&["PING"], Duration::from_millis(300)));
    assert!(err.is_timeout(), "expected a time-out, got {err}");
    assert!(started.elapsed() < Duration::from_secs(3));

    server.resume()?;
    assert!(!server.is_paused());
    assert_eq!(server.command(&["GET", "key"])?.as_str(), Some("value"));

    let pid = server.pid().ok_or("no pid while running")?;
    server.stop()?;
    assert_eq!(server.pid(), None);
    assert!(!server.is_running());
    let err = expect_err(server.command(&["PING"]));
    assert!(err.is_connection_refused(), "expected refused, got {err}");
    assert!(!pid_exists(pid), "redis-server {pid} survived stop()");
    server.stop()?; // idempotent

    server.start_again()?;
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(pid));
    assert_eq!(server.command(&["PING"])?, RespValue::Simple("PONG".into()));
    assert!(
        server.command(&["GET", "key"])?.is_nil(),
        "data must be gone"
    );

    let pid = server.pid().ok_or("no pid after restart")?;
    let dir = server.dir().to_path_buf();
    drop(server);
    assert!(refuses(port), "port {port} still answers after drop");
    assert!(!pid_exists(pid), "redis-server {pid} survived drop");
    assert!(!dir.exists(), "temp dir {} survived drop", dir.display());
    Ok(())
}

#[test]
fn stop_and_drop_work_while_paused() -> TestResult {
    let mut server = RedisServer::start()?;
    server.pause()?;
    server.stop()?;
    assert!(!server.is_paused());
    assert!(expect_err(server.pause())
        .to_string()
        .contains("not running"));

    server.start_again()?;
    server.pause()?;
    let (port, pid) = (server.port(), server.pid().ok_or("no pid")?);
    drop(server);
    assert!(refuses(port));
    assert!(!pid_exists(pid));
    Ok(())
}

#[test]
fn start_again_restarts_a_running_server() -> TestResult {
    let mut server = RedisServer::start()?;
    server.command(&["SET", "k", "v"])?;
    server.start_again()?;
    assert!(server.command(&["GET", "k"])?.is_nil());
    Ok(())
}

#[test]
fn extra_args_are_applied() -> TestResult {
    let server = RedisServer::start_with(&["--maxmemory", "7mb", "--databases", "3"])?;
    let reply = server.command(&["CONFIG", "GET", "maxmemory"])?;
    let items = reply.as_array().ok_or("not an array")?;
    assert_eq!(items.get(1).and_then(RespValue::as_str), Some("7340032"));
    // The defaults are in effect too.
    let reply = server.command(&["CONFIG", "GET", "save"])?;
    assert_eq!(
        reply.as_array().and_then(|a| a.get(1)),
        Some(&RespValue::Bulk(vec![]))
    );
    assert!(server.command(&["SELECT", "5"])?.error_message().is_some());
    Ok(())
}

#[test]
fn bad_arguments_fail_fast_with_the_log() -> TestResult {
    let started = Instant::now();
    let err = expect_err(RedisServer::start_with(&["--no-such-option", "1"]));
    let text = err.to_string();
    assert!(matches!(err, TestingError::StartFailed { .. }), "{text}");
    assert!(text.contains("no-such-option"), "log missing from: {text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    Ok(())
}

#[test]
fn flushall_empties_the_server() -> TestResult {
    let server = RedisServer::start()?;
    server.command(&["SET", "a", "1"])?;
    server.flushall()?;
    assert_eq!(server.command(&["DBSIZE"])?.as_integer(), Some(0));
    Ok(())
}

#[test]
fn parallel_starts_get_distinct_ports() -> TestResult {
    let handles: Vec<_> = (0..6).map(|_| thread::spawn(RedisServer::start)).collect();
    let mut servers = Vec::new();
    for handle in handles {
        servers.push(handle.join().map_err(|_| "start thread panicked")??);
    }
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(server.command(&["PING"])?.as_str(), Some("PONG"));
    }
    Ok(())
}
