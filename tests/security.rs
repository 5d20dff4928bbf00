//! Security set-ups against private redis-servers (issue 9):
//!
//! * TLS through redis-rs (`tls-rustls`) and fred (`enable-rustls-ring`),
//!   with a CA and server certificate made here with the `openssl` CLI, an
//!   ACL user with a password, and a server that is not trusted refused;
//! * the minimal ACL of the README's Security section: every lock kind
//!   acquires, refreshes (a hold kept past its lock timeout) and releases as
//!   a user with exactly those commands and key patterns, through redis-rs
//!   and fred; a Mutex alone needs only seven commands.
//!
//! A lock kind that needs a command outside the ACL fails here with the
//! server's refusal in the message (`NOPERM`, or from inside a script "The
//! user executing the script can't run this command or subcommand").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redsem_core::{
    LockError, LockGuard, LockOptions, MultiSemaphore, Mutex, RedisBackend, RedlockMultiSemaphore,
    RedlockMutex, RedlockSemaphore, Semaphore,
};
use redsem_fred::fred::prelude::{Builder, ClientLike, Config};
use redsem_fred::FredBackend;
use redsem_redis::{redis, RedisRsBackend};
use redsem_testing::{RedisServer, RespValue};

/// The ACL of the README's Security section, as `ACL SETUSER` arguments
/// after the user name, password and key patterns.
const MINIMAL_ACL: &[&str] = &[
    "+evalsha",
    "+eval",
    "+set",
    "+get",
    "+del",
    "+pexpire",
    "+incr",
    "+time",
    "+zremrangebyscore",
    "+zcard",
    "+zadd",
    "+zscore",
    "+zrem",
    "+info",
];
/// What a Mutex alone needs: the first seven.
const MUTEX_ACL: &[&str] = &[
    "+evalsha", "+eval", "+set", "+get", "+del", "+pexpire", "+incr",
];
/// The lock keys and their fencing counters (`{mutex:<key>}:fence`).
const LOCK_KEYS: &[&str] = &["~mutex:*", "~semaphore:*", "~{mutex:*", "~{semaphore:*"];
const USER: &str = "locker";
const PASSWORD: &str = "lock-pw-9";

fn start_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `args` to `server` as the (password-less) default user and insists
/// on `+OK`.
fn admin(server: &RedisServer, args: &[&str]) {
    let reply = server
        .command(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(reply.is_ok(), "{args:?}: {reply}");
}

/// Creates `user` with `PASSWORD`, read-write access to `key_patterns` and
/// exactly `commands`, in the README's form:
/// `ACL SETUSER <user> on ><password> resetkeys <keys> nocommands <commands>`.
fn create_user(server: &RedisServer, user: &str, key_patterns: &[&str], commands: &[&str]) {
    let password = format!(">{PASSWORD}");
    let mut args = vec!["ACL", "SETUSER", user, "on", password.as_str(), "resetkeys"];
    args.extend_from_slice(key_patterns);
    args.push("nocommands");
    args.extend_from_slice(commands);
    admin(server, &args);
}

/// `redis://user:password@127.0.0.1:<port>`.
fn user_url(server: &RedisServer, user: &str) -> String {
    format!("redis://{user}:{PASSWORD}@127.0.0.1:{}", server.port())
}

/// Options with a short lock timeout, so that holding a lock past it needs
/// refreshes.
fn short_options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(Duration::from_millis(1_500))
        .command_timeout(Duration::from_millis(500))
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .expect("options")
}

/// How long a test holds a lock: past its lock timeout.
const HOLD: Duration = Duration::from_millis(2_200);

/// Holds `guard` past the lock timeout (so it must have been refreshed),
/// then releases it; `what` names the lock in failures.
async fn hold_and_release(what: String, guard: LockGuard) {
    tokio::time::sleep(HOLD).await;
    assert!(
        guard.is_acquired(),
        "{what}: lost while held past its lock timeout: refresh failed"
    );
    guard
        .release()
        .await
        .unwrap_or_else(|e| panic!("{what}: release failed: {e}"));
}

/// Acquires, holds past the lock timeout and releases every lock kind, all
/// at once, on `node` (single-node kinds) and `nodes` (Redlock kinds).
async fn every_kind<B>(tag: &str, node: B, nodes: Vec<B>)
where
    B: RedisBackend + Clone + 'static,
{
    let options = short_options();
    let acquired = |kind: &str, result: Result<LockGuard, LockError>| {
        result.unwrap_or_else(|e| panic!("{tag}: {kind}: acquire failed: {e}"))
    };
    let mutex = Mutex::with_options(node.clone(), format!("{tag}:m"), options.clone()).unwrap();
    let semaphore =
        Semaphore::with_options(node.clone(), format!("{tag}:s"), 3, options.clone()).unwrap();
    let multi =
        MultiSemaphore::with_options(node, format!("{tag}:ms"), 4, 2, options.clone()).unwrap();
    let redlock_mutex =
        RedlockMutex::with_options(nodes.clone(), format!("{tag}:rm"), options.clone()).unwrap();
    let redlock_semaphore =
        RedlockSemaphore::with_options(nodes.clone(), format!("{tag}:rs"), 3, options.clone())
            .unwrap();
    let redlock_multi =
        RedlockMultiSemaphore::with_options(nodes, format!("{tag}:rms"), 4, 2, options).unwrap();

    let m = acquired("Mutex", mutex.acquire().await);
    let s = acquired("Semaphore", semaphore.acquire().await);
    let ms = acquired("MultiSemaphore", multi.acquire().await);
    let rm = acquired("RedlockMutex", redlock_mutex.acquire().await);
    let rs = acquired("RedlockSemaphore", redlock_semaphore.acquire().await);
    let rms = acquired("RedlockMultiSemaphore", redlock_multi.acquire().await);
    // A second holder of the mutex is turned away while the first holds it.
    assert!(
        mutex.try_acquire().await.expect("try_acquire").is_none(),
        "{tag}: the mutex was acquired twice"
    );
    tokio::join!(
        hold_and_release(format!("{tag}: Mutex"), m),
        hold_and_release(format!("{tag}: Semaphore"), s),
        hold_and_release(format!("{tag}: MultiSemaphore"), ms),
        hold_and_release(format!("{tag}: RedlockMutex"), rm),
        hold_and_release(format!("{tag}: RedlockSemaphore"), rs),
        hold_and_release(format!("{tag}: RedlockMultiSemaphore"), rms),
    );
}

/// Three servers, each with `USER` holding the minimal ACL.
fn servers_with_minimal_acl() -> Vec<RedisServer> {
    let servers: Vec<RedisServer> = (0..3).map(|_| start_server()).collect();
    for server in &servers {
        create_user(server, USER, LOCK_KEYS, MINIMAL_ACL);
    }
    servers
}

#[tokio::test]
async fn minimal_acl_runs_every_lock_kind_through_redis_rs() {
    let servers = servers_with_minimal_acl();
    let mut nodes = Vec::new();
    for server in &servers {
        nodes.push(
            RedisRsBackend::connect(&user_url(server, USER))
                .await
                .expect("connect as the ACL user"),
        );
    }

    // The ACL is in force: other commands and other keys are refused.
    let mut conn = nodes[0].connection().clone();
    let err = redis::cmd("FLUSHALL")
        .query_async::<redis::Value>(&mut conn)
        .await
        .expect_err("FLUSHALL is not in the ACL");
    assert_eq!(err.code(), Some("NOPERM"), "{err}");
    let err = redis::cmd("SET")
        .arg("other:key")
        .arg("x")
        .query_async::<redis::Value>(&mut conn)
        .await
        .expect_err("other:key is outside the key patterns");
    assert_eq!(err.code(), Some("NOPERM"), "{err}");

    every_kind("acl-redis-rs", nodes[0].clone(), nodes).await;
}

#[tokio::test]
async fn minimal_acl_runs_every_lock_kind_through_fred() {
    let servers = servers_with_minimal_acl();
    let mut nodes = Vec::new();
    for server in &servers {
        nodes.push(
            FredBackend::connect(&user_url(server, USER))
                .await
                .expect("connect as the ACL user"),
        );
    }
    every_kind("acl-fred", nodes[0].clone(), nodes).await;
}

/// A Mutex needs only `+evalsha +eval +set +get +del +pexpire +incr` (and
/// `~mutex:* ~{mutex:*`); a Semaphore as that user fails with the server's
/// `NOPERM`.
#[tokio::test]
async fn mutex_alone_needs_seven_commands() {
    let server = start_server();
    create_user(&server, "mutexonly", &["~mutex:*", "~{mutex:*"], MUTEX_ACL);
    let backend = RedisRsBackend::connect(&user_url(&server, "mutexonly"))
        .await
        .expect("connect as the ACL user");

    let mutex = Mutex::with_options(backend.clone(), "six", short_options()).unwrap();
    let guard = mutex.acquire().await.expect("acquire");
    // The NOSCRIPT path too: the scripts are not cached on a new server, so
    // the first EVALSHA fell back to EVAL; flush them and go again.
    admin(&server, &["SCRIPT", "FLUSH"]);
    hold_and_release("seven-command Mutex".into(), guard).await;
    let again = mutex.acquire().await.expect("acquire again");
    again.release().await.expect("release");

    // The seven commands are not enough for a Semaphore, even with its keys.
    create_user(&server, "sevenonly", LOCK_KEYS, MUTEX_ACL);
    let backend = RedisRsBackend::connect(&user_url(&server, "sevenonly"))
        .await
        .expect("connect as the ACL user");
    let options = LockOptions::builder()
        .acquire_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let semaphore = Semaphore::with_options(backend, "six", 2, options).unwrap();
    let err = semaphore
        .acquire()
        .await
        .expect_err("a Semaphore needs more than the seven commands");
    // From inside a script Redis says "The user executing the script can't
    // run this command or subcommand"; outside one, NOPERM.
    let message = err.to_string().to_lowercase();
    assert!(
        message.contains("can't run this command") || message.contains("noperm"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redsem-tls-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `openssl` CLI in `dir`; a missing `openssl` fails with how to
/// install it.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS tests make their certificates with the `openssl` command-line \
                 tool, which could not be run ({e}): install it (Debian/Ubuntu: \
                 `apt-get install openssl`, macOS: `brew install openssl`)"
            )
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it (P-256 keys,
/// valid for two days), in a temp dir.
struct Certificates {
    dir: TempDir,
}

impl Certificates {
    fn make() -> Certificates {
        let dir = TempDir::new();
        let p = &dir.0;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=redsem test CA",
        ]);
        openssl(p, &ca);
        let mut csr = vec!["req", "-nodes"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(p, &csr);
        std::fs::write(
            p.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            p,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        Certificates { dir }
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.file("ca.crt")).expect("read ca.crt")
    }
}

/// A server listening for TLS on `tls_port` (and, for the harness and for
/// set-up, in plaintext on its usual port), with `USER` allowed everything
/// on the lock keys.
struct TlsServer {
    server: RedisServer,
    tls_port: u16,
    certs: Certificates,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl TlsServer {
    fn start() -> TlsServer {
        let certs = Certificates::make();
        let (cert, key, ca) = (
            certs.dir.file("server.crt"),
            certs.dir.file("server.key"),
            certs.dir.file("ca.crt"),
        );
        let mut last_error = None;
        for _ in 0..5 {
            let tls_port = free_port().to_string();
            let started = RedisServer::start_with(&[
                "--tls-port",
                &tls_port,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ]);
            match started {
                Ok(server) => {
                    let tls_port: u16 = tls_port.parse().unwrap();
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
                        assert!(
                            Instant::now() < deadline,
                            "TLS port {tls_port} never opened"
                        );
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    create_user(&server, USER, LOCK_KEYS, &["+@all"]);
                    return TlsServer {
                        server,
                        tls_port,
                        certs,
                    };
                }
                // The TLS port may have been taken meanwhile: another one.
                Err(e) => last_error = Some(e),
            }
        }
        panic!(
            "redis-server with TLS did not start (is it built with TLS?): {}",
            last_error.map(|e| e.to_string()).unwrap_or_default()
        );
    }

    /// `rediss://` with `USER`'s credentials if `with_user`.
    fn url(&self, with_user: bool) -> String {
        let credentials = if with_user {
            format!("{USER}:{PASSWORD}@")
        } else {
            String::new()
        };
        format!("rediss://{credentials}127.0.0.1:{}", self.tls_port)
    }

    /// The number of TLS connections the server accepted so far
    /// (`INFO stats`, asked in plaintext as the default user).
    fn accepted_connections(&self) -> i64 {
        let info = self.server.command(&["INFO", "stats"]).expect("INFO");
        let RespValue::Bulk(text) = &info else {
            panic!("INFO replied {info}");
        };
        String::from_utf8_lossy(text)
            .lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_connections_received")
    }
}

/// A Mutex and a Semaphore held past their lock timeout (refreshed over
/// TLS) and released; the keys are checked from the plaintext side.
async fn locks_over_tls<B>(tag: &str, backend: B, server: &TlsServer)
where
    B: RedisBackend + Clone + 'static,
{
    let mutex = Mutex::with_options(backend.clone(), tag, short_options()).unwrap();
    let semaphore = Semaphore::with_options(backend, tag, 2, short_options()).unwrap();
    let m = mutex.acquire().await.expect("mutex over TLS");
    let s = semaphore.acquire().await.expect("semaphore over TLS");
    let held = server
        .server
        .command(&["GET", &format!("mutex:{tag}")])
        .expect("GET");
    assert_eq!(held.as_str(), Some(m.identifier()), "{held}");
    tokio::join!(
        hold_and_release(format!("{tag}: Mutex over TLS"), m),
        hold_and_release(format!("{tag}: Semaphore over TLS"), s),
    );
    let gone = server
        .server
        .command(&["GET", &format!("mutex:{tag}")])
        .expect("GET");
    assert!(gone.is_nil(), "{gone}");
}

/// `tls-rustls`: redis-rs with the test CA as root, as an ACL user with a
/// password; `connect` to the same server without the CA fails with an
/// error (the certificate is not trusted), it neither panics nor falls back
/// to plaintext.
#[tokio::test]
async fn tls_locks_through_redis_rs() {
    let server = TlsServer::start();
    let before = server.accepted_connections();

    let err = RedisRsBackend::connect(&server.url(true))
        .await
        .expect_err("a server certificate from an unknown CA must be refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{:?}: {err}",
        err.kind()
    );
    eprintln!("redis-rs, untrusted server: {:?}: {err}", err.kind());

    let client = redis::Client::build_with_tls(
        server.url(true),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(server.certs.ca_pem()),
        },
    )
    .expect("client");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("TLS connection with the test CA");
    let backend = RedisRsBackend::new(conn);
    locks_over_tls("tls-redis-rs", backend, &server).await;
    assert!(server.accepted_connections() > before);
}

/// `enable-rustls-ring`: fred with a rustls config trusting the test CA, as
/// an ACL user with a password; `FredBackend::connect` without the CA fails
/// with an error.
#[tokio::test]
async fn tls_locks_through_fred() {
    use redsem_fred::fred::rustls;
    use redsem_fred::fred::types::config::TlsConnector;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let server = TlsServer::start();

    let err = FredBackend::connect(&server.url(true))
        .await
        .expect_err("a server certificate from an unknown CA must be refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{:?}: {err}",
        err.kind()
    );

    eprintln!("fred, untrusted server: {:?}: {err}", err.kind());

    // `connect` installed ring's provider if there was none; make sure.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&server.certs.ca_pem()) {
        roots.add(cert.expect("PEM")).expect("CA cert");
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut config = Config::from_url(&server.url(true)).expect("url");
    config.tls = Some(TlsConnector::from(tls).into());
    let client = Builder::from_config(config).build().expect("client");
    client
        .init()
        .await
        .expect("TLS connection with the test CA");
    let backend = FredBackend::new(client);
    locks_over_tls("tls-fred", backend, &server).await;
}
