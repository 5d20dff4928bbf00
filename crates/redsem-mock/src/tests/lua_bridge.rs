//! The Lua bridge: conversions both ways, `redis.call` vs `redis.pcall`
//! errors, users' own scripts, the sandbox and the script cache.

use std::time::Duration;

use futures::executor::block_on;
use redsem_core::{Arg, BackendError, BackendErrorKind, RedisBackend, Reply, Script};

use crate::MockBackend;

/// Runs `source` (leaked into a `'static` script named "test") with KEYS =
/// ["k"] and `args`.
fn eval(redis: &MockBackend, source: &str, args: &[Arg<'_>]) -> Result<Reply, BackendError> {
    let source: &'static str = Box::leak(source.to_owned().into_boxed_str());
    let script: &'static Script = Box::leak(Box::new(Script::new("test", source)));
    block_on(redis.run_script(script, &["k"], args))
}

fn ok(redis: &MockBackend, source: &str) -> Reply {
    eval(redis, source, &[]).unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn err(redis: &MockBackend, source: &str) -> BackendError {
    match eval(redis, source, &[]) {
        Ok(reply) => panic!("{source}: returned {reply:?}"),
        Err(e) => e,
    }
}

fn data(s: &str) -> Reply {
    Reply::Data(s.as_bytes().to_vec())
}

fn sha1(source: &str) -> String {
    Script::new("x", Box::leak(source.to_owned().into_boxed_str()))
        .sha1()
        .to_owned()
}

#[test]
fn redis_replies_become_lua_values() {
    let redis = MockBackend::new();
    redis.set("k", "text");
    redis.zadd("z", 5, "m");
    let script = "
        local function kind(v)
          if type(v) == 'table' then
            if v.ok then return 'status:' .. v.ok end
            if v.err then return 'error:' .. v.err end
            return 'array:' .. #v .. ':' .. type(v[1])
          end
          return type(v) .. ':' .. tostring(v)
        end
        return {
          kind(redis.call('EXISTS', KEYS[1])),
          kind(redis.call('GET', KEYS[1])),
          kind(redis.call('GET', 'missing')),
          kind(redis.call('SET', 'other', 'v')),
          kind(redis.pcall('GET', 'z')),
          kind(redis.call('ZRANGE', 'z', 0, -1, 'WITHSCORES')),
        }";
    let expected = [
        "number:1",
        "string:text",
        "boolean:false",
        "status:OK",
        "error:WRONGTYPE Operation against a key holding the wrong kind of value",
        "array:2:string",
    ];
    assert_eq!(
        ok(&redis, script),
        Reply::Array(expected.iter().map(|s| data(s)).collect())
    );
}

#[test]
fn lua_values_become_redis_replies() {
    let redis = MockBackend::new();
    assert_eq!(ok(&redis, "return 42"), Reply::Int(42));
    assert_eq!(ok(&redis, "return 3.99"), Reply::Int(3), "truncated");
    assert_eq!(ok(&redis, "return -3.99"), Reply::Int(-3), "toward zero");
    assert_eq!(ok(&redis, "return 'text'"), data("text"));
    assert_eq!(ok(&redis, "return true"), Reply::Int(1));
    assert_eq!(ok(&redis, "return false"), Reply::Nil);
    assert_eq!(ok(&redis, "return nil"), Reply::Nil);
    assert_eq!(ok(&redis, "local x = 1"), Reply::Nil, "no return");
    assert_eq!(
        ok(&redis, "return {1, 'two', true, false, nil, 6}"),
        Reply::Array(vec![Reply::Int(1), data("two"), Reply::Int(1), Reply::Nil]),
        "an array stops at the first nil"
    );
    assert_eq!(
        ok(&redis, "return {1, {2, {}}}"),
        Reply::Array(vec![
            Reply::Int(1),
            Reply::Array(vec![Reply::Int(2), Reply::Array(vec![])])
        ])
    );
    assert_eq!(ok(&redis, "return {a = 1}"), Reply::Array(vec![]));
    assert_eq!(
        ok(&redis, "return {ok = 'fine'}"),
        Reply::Status("fine".into())
    );
    assert_eq!(
        ok(&redis, "return redis.status_reply('QUEUED')"),
        Reply::Status("QUEUED".into())
    );
    assert_eq!(ok(&redis, "return {double = 1.5}"), data("1.5"));
    assert_eq!(
        ok(&redis, "return redis.sha1hex('abc')"),
        data("a9993e364706816aba3e25717850c26c9cd0d89d")
    );

    let e = err(&redis, "return {err = 'MYCODE went wrong'}");
    assert_eq!(e.kind(), BackendErrorKind::Server);
    assert_eq!(e.message(), "MYCODE went wrong");
    assert_eq!(
        err(&redis, "return redis.error_reply('boom')").message(),
        "ERR boom"
    );
    assert_eq!(
        err(&redis, "return {1, redis.error_reply('inner')}").message(),
        "ERR inner",
        "an error inside an array fails the call, as the client adapters do"
    );
}

#[test]
fn keys_and_argv_are_strings() {
    let redis = MockBackend::new();
    let reply = eval(
        &redis,
        "return {KEYS[1], ARGV[1], type(ARGV[1]), ARGV[2], #KEYS, #ARGV, tonumber(ARGV[1]) + 1}",
        &[Arg::Int(41), Arg::Str("id")],
    )
    .unwrap();
    assert_eq!(
        reply,
        Reply::Array(vec![
            data("k"),
            data("41"),
            data("string"),
            data("id"),
            Reply::Int(1),
            Reply::Int(2),
            Reply::Int(42)
        ])
    );
    // Numbers passed to redis.call arrive as text, integers without a fraction.
    ok(
        &redis,
        "redis.call('SET', KEYS[1], 2^53) redis.call('SET', 'f', 1.5)",
    );
    assert_eq!(redis.get("k").as_deref(), Some("9007199254740992"));
    assert_eq!(redis.get("f").as_deref(), Some("1.5"));
}

#[test]
fn call_raises_and_pcall_returns_errors() {
    let redis = MockBackend::new();
    redis.zadd("k", 1, "m");
    let source = "local a = 1\nreturn redis.call('GET', KEYS[1])";
    let e = err(&redis, source);
    assert_eq!(e.kind(), BackendErrorKind::Server);
    assert_eq!(
        e.message(),
        format!(
            "WRONGTYPE Operation against a key holding the wrong kind of value script: {}, on @user_script:2.",
            sha1(source)
        )
    );
    assert_eq!(
        ok(&redis, "return redis.pcall('GET', KEYS[1]).err"),
        data("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    // Lua's pcall around redis.call gets the message, as in Redis 7.
    assert_eq!(
        ok(
            &redis,
            "local ok, e = pcall(redis.call, 'GET', KEYS[1]) return {tostring(ok), e}"
        ),
        Reply::Array(vec![
            data("false"),
            data("WRONGTYPE Operation against a key holding the wrong kind of value")
        ])
    );
    assert_eq!(
        ok(&redis, "return select(2, xpcall(function() redis.call('NOSUCH') end, function(e) return e.err end))"),
        data("ERR Unknown Redis command called from script")
    );
    // Argument errors follow the same path.
    assert!(err(&redis, "return redis.call('GET', nil)")
        .message()
        .starts_with("ERR Lua redis lib command arguments must be strings or integers script: "));
    assert_eq!(
        ok(&redis, "return redis.pcall().err"),
        data("ERR Please specify at least one argument for this redis lib call")
    );
    assert_eq!(redis.zrange("k"), ["m"], "nothing changed");
}

#[test]
fn unknown_commands_and_wrong_arity_are_errors() {
    let redis = MockBackend::new();
    let source = "return redis.call('FLUSHALL')";
    assert_eq!(
        err(&redis, source).message(),
        format!(
            "ERR Unknown Redis command called from script script: {}, on @user_script:1.",
            sha1(source)
        )
    );
    assert!(err(&redis, "return redis.call('get')")
        .message()
        .starts_with("ERR Wrong number of args calling Redis command from script script: "));
    // Every implemented command is reachable, in any case.
    for name in crate::commands::names() {
        let reply = eval(
            &redis,
            "return redis.pcall(ARGV[1])",
            &[Arg::Str(&name.to_uppercase())],
        );
        match reply {
            Err(e) => assert!(
                e.message().starts_with("ERR Wrong number of args"),
                "{name}: {e}"
            ),
            Ok(_) => assert!(["time", "ping"].contains(&name), "{name}"),
        }
    }
}

#[test]
fn runtime_and_compile_errors_look_like_redis_7() {
    let redis = MockBackend::new();
    let source = "\nerror('boom')";
    assert_eq!(
        err(&redis, source).message(),
        format!(
            "ERR user_script:2: boom script: {}, on @user_script:2.",
            sha1(source)
        )
    );
    let source = "return nil + 1";
    assert!(err(&redis, source)
        .message()
        .starts_with("ERR user_script:1: attempt to perform arithmetic on a nil value script: "));
    let source = "return 1 +";
    let e = err(&redis, source);
    assert_eq!(e.kind(), BackendErrorKind::Server);
    assert_eq!(
        e.message(),
        "ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'"
    );
}

#[test]
fn scripts_cannot_touch_globals() {
    let redis = MockBackend::new();
    assert!(err(&redis, "x = 1")
        .message()
        .starts_with("ERR user_script:1: Attempt to modify a readonly table script: "));
    assert!(err(&redis, "redis = nil")
        .message()
        .starts_with("ERR user_script:1: Attempt to modify a readonly table"));
    assert!(err(&redis, "string.rep = nil")
        .message()
        .starts_with("ERR user_script:1: Attempt to modify a readonly table"));
    assert!(err(&redis, "return undefined").message().starts_with(
        "ERR user_script:1: Script attempted to access nonexistent global variable 'undefined'"
    ));
    assert_eq!(ok(&redis, "local x = 1 return x + 1"), Reply::Int(2));
    assert_eq!(
        ok(
            &redis,
            "return string.rep('ab', 2) .. math.max(1, 3) .. table.concat({1, 2})"
        ),
        data("abab312")
    );
    assert_eq!(
        ok(&redis, "return loadstring('return KEYS[1]')()"),
        data("k")
    );
    assert!(
        err(&redis, "return os.time()").message().contains("'os'"),
        "no os library"
    );
}

#[test]
fn a_users_script_runs_and_is_counted_by_name() {
    static RATE_LIMIT: Script = Script::new(
        "rate_limit",
        "local n = redis.call('INCR', KEYS[1])
         if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
         if n > tonumber(ARGV[1]) then return redis.error_reply('LIMITED try later') end
         return {n, redis.call('PTTL', KEYS[1])}",
    );
    let redis = MockBackend::new();
    let args = [Arg::Int(2), Arg::Int(1_000)];
    let err = block_on(redis.eval_sha(&RATE_LIMIT, &["rl"], &args)).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::NoScript);
    for n in 1..=2 {
        match block_on(redis.run_script(&RATE_LIMIT, &["rl"], &args)).unwrap() {
            Reply::Array(items) => assert_eq!(items[0], Reply::Int(n)),
            other => panic!("{other:?}"),
        }
    }
    let err = block_on(redis.run_script(&RATE_LIMIT, &["rl"], &args)).unwrap_err();
    assert_eq!(err.message(), "LIMITED try later");
    assert_eq!(
        redis.script_calls("rate_limit"),
        2,
        "error replies are not counted"
    );
    redis.advance(Duration::from_secs(1));
    assert!(block_on(redis.run_script(&RATE_LIMIT, &["rl"], &args)).is_ok());
}

#[test]
fn time_follows_the_node_clock() {
    let redis = MockBackend::new();
    redis.advance(Duration::from_secs(86_400));
    let before = redis.now_ms();
    let reply = ok(
        &redis,
        "local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000)",
    );
    let after = redis.now_ms();
    let ms = reply.as_i64().unwrap();
    assert!(
        (before..=after).contains(&ms),
        "{ms} not in {before}..={after}"
    );
}

#[test]
fn the_script_cache_compiles_once_per_node() {
    static COUNTER: Script = Script::new("counter", "return redis.call('INCR', KEYS[1])");
    static BROKEN: Script = Script::new("broken", "return (");
    let redis = MockBackend::new();
    let other = MockBackend::new();

    assert!(block_on(redis.eval(&BROKEN, &["k"], &[])).is_err());
    assert!(
        !redis.is_script_loaded(&BROKEN),
        "a script that does not compile is not cached"
    );

    assert_eq!(
        block_on(redis.eval(&COUNTER, &["k"], &[])).unwrap(),
        Reply::Int(1)
    );
    assert!(redis.is_script_loaded(&COUNTER));
    assert!(
        !other.is_script_loaded(&COUNTER),
        "each node has its own cache"
    );
    assert_eq!(
        block_on(redis.eval_sha(&COUNTER, &["k"], &[])).unwrap(),
        Reply::Int(2)
    );
    assert_eq!(
        block_on(redis.eval(&COUNTER, &["k"], &[])).unwrap(),
        Reply::Int(3)
    );
    assert!(format!("{redis:?}").contains("cached_scripts: 1"));

    redis.flush_scripts();
    let err = block_on(redis.eval_sha(&COUNTER, &["k"], &[])).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::NoScript);
    assert_eq!(redis.get("k").as_deref(), Some("3"), "NOSCRIPT ran nothing");
    assert_eq!(
        block_on(redis.run_script(&COUNTER, &["k"], &[])).unwrap(),
        Reply::Int(4)
    );

    redis.restart();
    assert!(!redis.is_script_loaded(&COUNTER));
    assert_eq!(
        block_on(redis.run_script(&COUNTER, &["k"], &[])).unwrap(),
        Reply::Int(1)
    );
    assert_eq!(redis.script_calls("counter"), 5);
}
