//! String and key commands, expiry, counters, `TIME`, `PUBLISH`, as scripts call them.

use crate::commands::{execute, Resp};
use crate::data::Keyspace;

fn run(data: &mut Keyspace, now: i64, argv: &[&str]) -> Resp {
    let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    execute(data, now, &argv)
}

fn err(msg: &str) -> Resp {
    Resp::Error(msg.to_owned())
}

#[test]
fn set_options() {
    let mut d = Keyspace::default();
    assert_eq!(
        run(&mut d, 0, &["SET", "k", "a", "NX", "PX", "100"]),
        Resp::ok()
    );
    assert_eq!(
        run(&mut d, 0, &["SET", "k", "b", "NX", "PX", "100"]),
        Resp::Nil
    );
    assert_eq!(run(&mut d, 0, &["PTTL", "k"]), Resp::Int(100));
    assert_eq!(
        run(&mut d, 10, &["SET", "k", "c", "XX", "GET", "KEEPTTL"]),
        Resp::Bulk(b"a".to_vec())
    );
    assert_eq!(run(&mut d, 10, &["PTTL", "k"]), Resp::Int(90));
    assert_eq!(run(&mut d, 10, &["SET", "k", "d", "EX", "2"]), Resp::ok());
    assert_eq!(run(&mut d, 10, &["TTL", "k"]), Resp::Int(2));
    assert_eq!(run(&mut d, 10, &["SET", "k", "e"]), Resp::ok());
    assert_eq!(run(&mut d, 10, &["PTTL", "k"]), Resp::Int(-1));
    assert_eq!(run(&mut d, 10, &["SET", "x", "v", "XX"]), Resp::Nil);
    assert_eq!(run(&mut d, 10, &["SET", "x", "v", "NX", "GET"]), Resp::Nil);
    assert_eq!(run(&mut d, 10, &["GET", "x"]), Resp::Bulk(b"v".to_vec()));
    assert_eq!(
        run(&mut d, 10, &["SET", "k", "v", "PXAT", "20"]),
        Resp::ok()
    );
    assert_eq!(run(&mut d, 20, &["EXISTS", "k"]), Resp::Int(0));
}

#[test]
fn set_errors() {
    let mut d = Keyspace::default();
    let syntax = err("ERR syntax error");
    assert_eq!(run(&mut d, 0, &["SET", "k", "v", "NX", "XX"]), syntax);
    assert_eq!(run(&mut d, 0, &["SET", "k", "v", "PX"]), syntax);
    assert_eq!(
        run(&mut d, 0, &["SET", "k", "v", "PX", "1", "EX", "1"]),
        syntax
    );
    assert_eq!(
        run(&mut d, 0, &["SET", "k", "v", "KEEPTTL", "PX", "1"]),
        syntax
    );
    assert_eq!(run(&mut d, 0, &["SET", "k", "v", "BOGUS"]), syntax);
    let invalid = err("ERR invalid expire time in 'set' command");
    assert_eq!(run(&mut d, 0, &["SET", "k", "v", "PX", "0"]), invalid);
    assert_eq!(run(&mut d, 0, &["SET", "k", "v", "EX", "-1"]), invalid);
    assert_eq!(
        run(&mut d, 1, &["SET", "k", "v", "PX", "9223372036854775807"]),
        invalid
    );
    assert_eq!(
        run(&mut d, 0, &["SET", "k", "v", "PX", "1.5"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(run(&mut d, 0, &["EXISTS", "k"]), Resp::Int(0));
    run(&mut d, 0, &["ZADD", "z", "1", "m"]);
    assert_eq!(
        run(&mut d, 0, &["SET", "z", "v", "GET"]),
        err(crate::data::WrongType::MESSAGE)
    );
    assert_eq!(
        run(&mut d, 0, &["SET", "z", "v"]),
        Resp::ok(),
        "SET replaces any type"
    );
}

#[test]
fn del_exists_type() {
    let mut d = Keyspace::default();
    run(&mut d, 0, &["SET", "a", "1"]);
    run(&mut d, 0, &["ZADD", "z", "1", "m"]);
    assert_eq!(
        run(&mut d, 0, &["EXISTS", "a", "a", "z", "n"]),
        Resp::Int(3)
    );
    assert_eq!(
        run(&mut d, 0, &["TYPE", "a"]),
        Resp::Status("string".into())
    );
    assert_eq!(run(&mut d, 0, &["TYPE", "z"]), Resp::Status("zset".into()));
    assert_eq!(run(&mut d, 0, &["TYPE", "n"]), Resp::Status("none".into()));
    assert_eq!(run(&mut d, 0, &["DEL", "a", "z", "n"]), Resp::Int(2));
}

#[test]
fn expire_family() {
    let mut d = Keyspace::default();
    assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "10"]), Resp::Int(0));
    run(&mut d, 0, &["SET", "k", "v"]);
    assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "100", "XX"]), Resp::Int(0));
    assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "100", "GT"]), Resp::Int(0));
    assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "100", "NX"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "50", "GT"]), Resp::Int(0));
    assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "50", "LT"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["EXPIRE", "k", "3"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["PTTL", "k"]), Resp::Int(3_000));
    assert_eq!(run(&mut d, 0, &["TTL", "k"]), Resp::Int(3));
    assert_eq!(run(&mut d, 0, &["PEXPIREAT", "k", "5000"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["EXPIREAT", "k", "6"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["PTTL", "k"]), Resp::Int(6_000));
    assert_eq!(run(&mut d, 0, &["PERSIST", "k"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["PERSIST", "k"]), Resp::Int(0));
    assert_eq!(run(&mut d, 0, &["TTL", "k"]), Resp::Int(-1));
    assert_eq!(run(&mut d, 0, &["TTL", "missing"]), Resp::Int(-2));
    assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "0"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["EXISTS", "k"]), Resp::Int(0), "deleted");
    run(&mut d, 0, &["SET", "k", "v"]);
    assert_eq!(
        run(&mut d, 1, &["PEXPIRE", "k", "9223372036854775807"]),
        err("ERR invalid expire time in 'pexpire' command")
    );
    assert_eq!(
        run(&mut d, 0, &["EXPIRE", "k", "9223372036854775807"]),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        run(&mut d, 0, &["PEXPIRE", "k", "1", "NX", "XX"]),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        run(&mut d, 0, &["PEXPIRE", "k", "1", "GT", "LT"]),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(
        run(&mut d, 0, &["PEXPIRE", "k", "1", "SOON"]),
        err("ERR Unsupported option SOON")
    );
    assert_eq!(
        run(&mut d, 0, &["PEXPIRE", "k", "x"]),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn counters_keep_the_ttl() {
    let mut d = Keyspace::default();
    assert_eq!(run(&mut d, 0, &["INCR", "n"]), Resp::Int(1));
    assert_eq!(run(&mut d, 0, &["INCRBY", "n", "41"]), Resp::Int(42));
    assert_eq!(run(&mut d, 0, &["DECR", "n"]), Resp::Int(41));
    assert_eq!(run(&mut d, 0, &["DECRBY", "n", "-1"]), Resp::Int(42));
    assert_eq!(run(&mut d, 0, &["GET", "n"]), Resp::Bulk(b"42".to_vec()));
    run(&mut d, 0, &["PEXPIRE", "n", "100"]);
    run(&mut d, 0, &["INCR", "n"]);
    assert_eq!(run(&mut d, 0, &["PTTL", "n"]), Resp::Int(100));
    run(&mut d, 0, &["SET", "t", "text"]);
    assert_eq!(
        run(&mut d, 0, &["INCR", "t"]),
        err("ERR value is not an integer or out of range")
    );
    run(&mut d, 0, &["SET", "max", "9223372036854775807"]);
    assert_eq!(
        run(&mut d, 0, &["INCR", "max"]),
        err("ERR increment or decrement would overflow")
    );
    run(&mut d, 0, &["ZADD", "z", "1", "m"]);
    assert_eq!(
        run(&mut d, 0, &["INCR", "z"]),
        err(crate::data::WrongType::MESSAGE)
    );
}

#[test]
fn time_ping_echo_publish() {
    let mut d = Keyspace::default();
    assert_eq!(
        run(&mut d, 1_700_000_000_123, &["TIME"]),
        Resp::Array(vec![
            Resp::Bulk(b"1700000000".to_vec()),
            Resp::Bulk(b"123000".to_vec())
        ])
    );
    assert_eq!(run(&mut d, 0, &["PING"]), Resp::Status("PONG".into()));
    assert_eq!(run(&mut d, 0, &["PING", "hi"]), Resp::Bulk(b"hi".to_vec()));
    assert_eq!(run(&mut d, 0, &["ECHO", "hi"]), Resp::Bulk(b"hi".to_vec()));
    assert_eq!(run(&mut d, 0, &["PUBLISH", "ch", "m"]), Resp::Int(0));
    assert_eq!(run(&mut d, 0, &["SPUBLISH", "ch", "m"]), Resp::Int(0));
}
