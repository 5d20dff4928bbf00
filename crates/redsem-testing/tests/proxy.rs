//! `FaultProxy` in front of a private redis-server, each mode proven with a
//! persistent RESP connection through it.

use std::error::Error;
use std::time::{Duration, Instant};

use redsem_testing::{FaultProxy, ProxyMode, RedisServer, RespConnection, RespValue};

type TestResult = Result<(), Box<dyn Error>>;

/// Bound of every single read/write of a connection that should get answers.
const ANSWER: Duration = Duration::from_secs(5);
/// Bound of a read that is expected to get no answer.
const SILENCE: Duration = Duration::from_millis(300);
/// Bound for the proxy to notice a client.
const NOTICE: Duration = Duration::from_secs(5);

fn connect(proxy: &FaultProxy) -> Result<RespConnection, Box<dyn Error>> {
    Ok(RespConnection::connect(proxy.addr(), ANSWER)?)
}

fn pong(conn: &mut RespConnection) -> Result<(), Box<dyn Error>> {
    assert_eq!(conn.command(&["PING"])?, RespValue::Simple("PONG".into()));
    Ok(())
}

#[test]
fn pass_forwards_commands_and_counts_them() -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/", proxy.port()));
    assert_eq!(proxy.upstream(), server.addr());
    assert_eq!(proxy.mode(), ProxyMode::Pass);

    let mut conn = connect(&proxy)?;
    pong(&mut conn)?;
    // A value larger than one chunk, both ways.
    let big = "x".repeat(100_000);
    assert!(conn.command(&["SET", "big", &big])?.is_ok());
    assert_eq!(conn.command(&["GET", "big"])?.as_str(), Some(big.as_str()));
    // It really is the upstream that answered.
    assert_eq!(
        server.command(&["STRLEN", "big"])?.as_integer(),
        Some(100_000)
    );

    let stats = proxy.stats();
    assert_eq!((stats.accepted, stats.active), (1, 1));
    assert!(stats.bytes_to_upstream > 100_000, "{stats:?}");
    assert!(stats.bytes_to_client > 100_000, "{stats:?}");
    assert_eq!(stats.bytes_swallowed, 0);

    // The client closing its end closes the proxied connection.
    drop(conn);
    proxy.wait_for("the connection to close", NOTICE, |s| s.active == 0)?;
    Ok(())
}

#[test]
fn latency_delays_each_direction_and_keeps_order() -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    let mut conn = connect(&proxy)?;
    pong(&mut conn)?;

    let delay = Duration::from_millis(250);
    proxy.latency(delay);
    assert_eq!(proxy.mode(), ProxyMode::Latency(delay));
    let started = Instant::now();
    pong(&mut conn)?;
    let round_trip = started.elapsed();
    // Delayed on the way there and on the way back.
    assert!(round_trip >= delay * 2, "round trip took {round_trip:?}");

    // Many separately written commands: replies come back in order.
    for _ in 0..20 {
        conn.send(&["INCR", "n"])?;
    }
    for expected in 1..=20 {
        assert_eq!(conn.read_reply()?.as_integer(), Some(expected));
    }

    proxy.pass();
    let started = Instant::now();
    pong(&mut conn)?;
    let round_trip = started.elapsed();
    assert!(
        round_trip < delay,
        "no latency after pass(): {round_trip:?}"
    );
    Ok(())
}

#[test]
fn blackhole_stalls_open_and_new_connections_until_pass() -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    let mut open = connect(&proxy)?;
    pong(&mut open)?;

    proxy.blackhole();
    let swallowed_before = proxy.stats().bytes_swallowed;
    open.set_timeout(SILENCE)?;
    let err = open
        .command(&["SET", "k", "from-open"])
        .expect_err("a black hole answers nothing");
    assert!(err.is_timeout(), "expected a time-out, got {err}");

    // A new connection is accepted, and stalls too.
    let mut new = RespConnection::connect(proxy.addr(), SILENCE)?;
    let err = new
        .command(&["SET", "k", "from-new"])
        .expect_err("a black hole answers nothing");
    assert!(err.is_timeout(), "expected a time-out, got {err}");
    proxy.wait_for("both connections", NOTICE, |s| s.active == 2)?;

    // Both requests were swallowed: the upstream never saw them.
    let both = proxy.wait_for("both requests to be swallowed", NOTICE, |s| {
        s.bytes_swallowed >= swallowed_before + 2 * 30
    })?;
    assert!(server.command(&["GET", "k"])?.is_nil());

    proxy.pass();
    // Swallowed requests stay unanswered; later ones are answered, on the
    // open connection and on the one accepted during the black hole.
    open.set_timeout(ANSWER)?;
    new.set_timeout(ANSWER)?;
    pong(&mut open)?;
    pong(&mut new)?;
    let mut fresh = connect(&proxy)?;
    pong(&mut fresh)?;
    assert!(server.command(&["GET", "k"])?.is_nil());
    assert_eq!(proxy.stats().bytes_swallowed, both.bytes_swallowed);
    Ok(())
}

#[test]
fn reset_all_drops_every_connection_at_once() -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut conn = connect(&proxy)?;
        pong(&mut conn)?;
        conns.push(conn);
    }
    // One of them waits in a blocking command that would take 20 s.
    conns[0].send(&["BLPOP", "never", "20"])?;
    proxy.wait_for("three connections", NOTICE, |s| s.active == 3)?;
    let deadline = Instant::now() + NOTICE;
    while !server
        .command(&["INFO", "clients"])?
        .as_str()
        .is_some_and(|info| info.contains("blocked_clients:1"))
    {
        assert!(Instant::now() < deadline, "BLPOP did not reach the server");
        std::thread::sleep(Duration::from_millis(10));
    }

    let started = Instant::now();
    assert_eq!(proxy.reset_all(), 3);
    let err = conns[0]
        .read_reply()
        .expect_err("the connection was dropped");
    assert!(
        err.is_connection_closed(),
        "expected a closed connection, got {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "not at once");
    for conn in &mut conns[1..] {
        let err = conn
            .command(&["PING"])
            .expect_err("the connection was dropped");
        assert!(
            err.is_connection_closed(),
            "expected a closed connection, got {err}"
        );
    }
    let stats = proxy.wait_for("no open connection", NOTICE, |s| s.active == 0)?;
    assert_eq!(stats.resets, 3);

    // New connections work.
    pong(&mut connect(&proxy)?)?;
    Ok(())
}

#[test]
fn refuse_closes_new_connections_until_pass() -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    let mut open = connect(&proxy)?;
    pong(&mut open)?;

    proxy.refuse();
    let mut refused = connect(&proxy)?;
    let err = refused
        .command(&["PING"])
        .expect_err("a refused connection is closed");
    assert!(
        err.is_connection_closed(),
        "expected a closed connection, got {err}"
    );
    let stats = proxy.stats();
    assert_eq!((stats.accepted, stats.refused, stats.active), (2, 1, 1));
    // Connections made before keep working.
    pong(&mut open)?;

    proxy.pass();
    pong(&mut connect(&proxy)?)?;
    assert_eq!(proxy.stats().refused, 1);
    Ok(())
}

#[test]
fn set_upstream_moves_later_connections_and_fail_over_to_drops_the_open_ones() -> TestResult {
    let first = RedisServer::start()?;
    let second = RedisServer::start()?;
    first.command(&["SET", "who", "first"])?;
    second.command(&["SET", "who", "second"])?;
    let proxy = FaultProxy::start(first.addr())?;
    let who = |conn: &mut RespConnection| -> Result<String, Box<dyn Error>> {
        let reply = conn.command(&["GET", "who"])?;
        Ok(reply.as_str().ok_or("no value")?.to_owned())
    };

    let mut on_first = connect(&proxy)?;
    assert_eq!(who(&mut on_first)?, "first");
    assert_eq!(proxy.set_upstream(second.addr()), first.addr());
    // The open connection stays where it is; a new one goes to `second`.
    assert_eq!(who(&mut on_first)?, "first");
    let mut on_second = connect(&proxy)?;
    assert_eq!(who(&mut on_second)?, "second");

    // Failing back over drops both, and new connections reach `first`.
    assert_eq!(proxy.fail_over_to(first.addr()), 2);
    for conn in [&mut on_first, &mut on_second] {
        let err = conn.command(&["PING"]).expect_err("dropped");
        assert!(
            err.is_connection_closed(),
            "expected a closed connection, got {err}"
        );
    }
    assert_eq!(who(&mut connect(&proxy)?)?, "first");
    Ok(())
}

#[test]
fn an_unreachable_upstream_closes_the_client() -> TestResult {
    let mut server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    server.stop()?;
    let mut conn = connect(&proxy)?;
    let err = conn.command(&["PING"]).expect_err("nothing upstream");
    assert!(
        err.is_connection_closed(),
        "expected a closed connection, got {err}"
    );
    let stats = proxy.wait_for("the failure to be counted", NOTICE, |s| {
        s.upstream_failures == 1
    })?;
    assert_eq!(stats.active, 0);

    // The same proxy works again once the upstream is back.
    server.start_again()?;
    pong(&mut connect(&proxy)?)?;
    Ok(())
}

#[test]
fn dropping_the_proxy_closes_its_port_and_connections() -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    let addr = proxy.addr();
    let mut conn = connect(&proxy)?;
    pong(&mut conn)?;
    proxy.blackhole(); // stalled connections end too

    let started = Instant::now();
    drop(proxy);
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = conn.command(&["PING"]).expect_err("the proxy is gone");
    assert!(
        err.is_connection_closed(),
        "expected a closed connection, got {err}"
    );
    let err = RespConnection::connect(addr, ANSWER).expect_err("the port is closed");
    assert!(err.is_connection_refused(), "expected refused, got {err}");
    Ok(())
}
