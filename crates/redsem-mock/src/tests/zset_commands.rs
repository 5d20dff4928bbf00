//! Sorted-set commands, as scripts call them.

use crate::commands::{execute, Resp};
use crate::data::{Keyspace, WrongType};

fn run(data: &mut Keyspace, argv: &[&str]) -> Resp {
    let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    execute(data, 0, &argv)
}

fn err(msg: &str) -> Resp {
    Resp::Error(msg.to_owned())
}

fn bulks(items: &[&str]) -> Resp {
    Resp::Array(
        items
            .iter()
            .map(|s| Resp::Bulk(s.as_bytes().to_vec()))
            .collect(),
    )
}

#[test]
fn zadd_flags() {
    let mut d = Keyspace::default();
    assert_eq!(
        run(&mut d, &["ZADD", "z", "1", "a", "2", "b"]),
        Resp::Int(2)
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "5", "a", "3", "c"]),
        Resp::Int(1)
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "CH", "6", "a", "3", "c"]),
        Resp::Int(1)
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "NX", "9", "a", "1", "d"]),
        Resp::Int(1)
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "XX", "CH", "9", "a", "1", "e"]),
        Resp::Int(1)
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "GT", "CH", "1", "a"]),
        Resp::Int(0)
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "LT", "CH", "1", "a"]),
        Resp::Int(1)
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "INCR", "2.5", "a"]),
        Resp::Bulk(b"3.5".to_vec())
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "NX", "INCR", "1", "a"]),
        Resp::Nil
    );
    assert_eq!(
        run(&mut d, &["ZSCORE", "z", "a"]),
        Resp::Bulk(b"3.5".to_vec())
    );
    assert_eq!(run(&mut d, &["ZSCORE", "z", "nope"]), Resp::Nil);
    assert_eq!(run(&mut d, &["ZADD", "new", "XX", "1", "a"]), Resp::Int(0));
    assert_eq!(
        run(&mut d, &["EXISTS", "new"]),
        Resp::Int(0),
        "XX creates no key"
    );
    assert_eq!(run(&mut d, &["ZADD", "z", "-inf", "lo"]), Resp::Int(1));
    assert_eq!(
        run(&mut d, &["ZSCORE", "z", "lo"]),
        Resp::Bulk(b"-inf".to_vec())
    );
}

#[test]
fn zadd_errors() {
    let mut d = Keyspace::default();
    assert_eq!(
        run(&mut d, &["ZADD", "z", "1", "a", "2"]),
        err("ERR syntax error")
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "NX", "XX", "1", "a"]),
        err("ERR XX and NX options at the same time are not compatible")
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "GT", "LT", "1", "a"]),
        err("ERR GT, LT, and/or NX options at the same time are not compatible")
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "INCR", "1", "a", "2", "b"]),
        err("ERR INCR option supports a single increment-element pair")
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "1", "a", "x", "b"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        run(&mut d, &["ZADD", "z", "nan", "a"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        run(&mut d, &["EXISTS", "z"]),
        Resp::Int(0),
        "nothing added on error"
    );
    run(&mut d, &["SET", "s", "v"]);
    for cmd in [
        &["ZADD", "s", "1", "a"][..],
        &["ZREM", "s", "a"],
        &["ZCARD", "s"],
        &["ZSCORE", "s", "a"],
        &["ZRANGE", "s", "0", "-1"],
        &["ZREMRANGEBYSCORE", "s", "-inf", "+inf"],
    ] {
        assert_eq!(run(&mut d, cmd), err(WrongType::MESSAGE), "{cmd:?}");
    }
}

#[test]
fn zrem_and_zcard_drop_empty_sets() {
    let mut d = Keyspace::default();
    run(&mut d, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(run(&mut d, &["ZCARD", "z"]), Resp::Int(3));
    assert_eq!(run(&mut d, &["ZREM", "z", "a", "x", "b"]), Resp::Int(2));
    assert_eq!(run(&mut d, &["ZREM", "z", "c"]), Resp::Int(1));
    assert_eq!(run(&mut d, &["EXISTS", "z"]), Resp::Int(0));
    assert_eq!(run(&mut d, &["ZCARD", "z"]), Resp::Int(0));
    assert_eq!(run(&mut d, &["ZREM", "z", "c"]), Resp::Int(0));
}

#[test]
fn ranges() {
    let mut d = Keyspace::default();
    run(
        &mut d,
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
    );
    assert_eq!(
        run(&mut d, &["ZRANGE", "z", "0", "-1"]),
        bulks(&["a", "b", "c", "d"])
    );
    assert_eq!(run(&mut d, &["ZRANGE", "z", "1", "2"]), bulks(&["b", "c"]));
    assert_eq!(
        run(&mut d, &["ZRANGE", "z", "-2", "100"]),
        bulks(&["c", "d"])
    );
    assert_eq!(run(&mut d, &["ZRANGE", "z", "3", "1"]), bulks(&[]));
    assert_eq!(
        run(&mut d, &["ZRANGE", "z", "0", "0", "REV"]),
        bulks(&["d"])
    );
    assert_eq!(
        run(&mut d, &["zrange", "z", "0", "1", "withscores"]),
        bulks(&["a", "1", "b", "2"])
    );
    assert_eq!(
        run(&mut d, &["ZRANGE", "z", "(1", "3", "BYSCORE"]),
        bulks(&["b", "c"])
    );
    assert_eq!(
        run(
            &mut d,
            &["ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2"]
        ),
        bulks(&["c", "b"])
    );
    assert_eq!(
        run(
            &mut d,
            &[
                "ZRANGEBYSCORE",
                "z",
                "-inf",
                "(3",
                "WITHSCORES",
                "LIMIT",
                "1",
                "-1"
            ]
        ),
        bulks(&["b", "2"])
    );
    assert_eq!(run(&mut d, &["ZRANGE", "missing", "0", "-1"]), bulks(&[]));
    assert_eq!(run(&mut d, &["ZCOUNT", "z", "2", "+inf"]), Resp::Int(3));
    assert_eq!(
        run(&mut d, &["ZRANGEBYSCORE", "z", "x", "1"]),
        err("ERR min or max is not a float")
    );
    assert_eq!(
        run(&mut d, &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    );
    assert_eq!(
        run(&mut d, &["ZRANGE", "z", "0", "1", "BOGUS"]),
        err("ERR syntax error")
    );
    assert_eq!(
        run(&mut d, &["ZREMRANGEBYSCORE", "z", "-inf", "(3"]),
        Resp::Int(2)
    );
    assert_eq!(
        run(&mut d, &["ZREMRANGEBYSCORE", "z", "(3", "+inf"]),
        Resp::Int(1)
    );
    assert_eq!(run(&mut d, &["ZRANGE", "z", "0", "-1"]), bulks(&["c"]));
    assert_eq!(
        run(&mut d, &["ZREMRANGEBYSCORE", "z", "3", "3"]),
        Resp::Int(1)
    );
    assert_eq!(run(&mut d, &["EXISTS", "z"]), Resp::Int(0));
}
