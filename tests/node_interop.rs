//! Node services using redis-semaphore and Rust services using redsem share
//! locks: same keys, values, members and TTLs. Each test drives real
//! redis-semaphore 5.7.0 holders (tests/node_interop/holder.js) against a
//! private redis-server.
//!
//! Needs Node.js and npm (the first run installs the pinned packages from
//! the npm registry), so the tests are opt-in:
//! `cargo test --test node_interop -- --ignored` (CI runs them).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::real_node::start_server;
use common::runner::tokio_runtime;
use redsem_core::{LockOptions, MultiSemaphore, Mutex, RedisBackend, Semaphore};
use redsem_redis::RedisRsBackend;
use redsem_testing::RedisServer;

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node_interop")
}

fn install_once() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if project().join("node_modules/redis-semaphore").exists() {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(project())
            .status()
            .expect("npm is needed for the Node interop tests");
        assert!(status.success(), "npm ci failed");
    });
}

/// One redis-semaphore holder process.
struct NodeHolder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    acquired: bool,
    identifier: String,
}

impl NodeHolder {
    /// Starts a holder that makes one try; `identifier` takes over a hold.
    fn start(
        server: &RedisServer,
        kind: &str,
        key: &str,
        limit: u32,
        permits: u32,
        identifier: Option<&str>,
    ) -> Self {
        install_once();
        let mut child = Command::new("node")
            .arg(project().join("holder.js"))
            .args([
                &server.port().to_string(),
                kind,
                key,
                &limit.to_string(),
                &permits.to_string(),
            ])
            .arg(identifier.unwrap_or("-"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node is needed for the Node interop tests");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let line = read_line(&mut stdout);
        let acquired = line.contains("\"acquired\":true");
        let identifier = line
            .split("\"identifier\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("identifier in holder output")
            .to_owned();
        NodeHolder {
            child,
            stdin,
            stdout,
            acquired,
            identifier,
        }
    }

    fn release(mut self) {
        writeln!(self.stdin, "release").expect("write");
        assert!(read_line(&mut self.stdout).contains("released"));
        self.child.wait().expect("holder exits");
    }

    /// Exits without releasing (the hold stays until its TTL).
    fn leave(mut self) {
        writeln!(self.stdin, "exit").expect("write");
        self.child.wait().expect("holder exits");
    }
}

impl Drop for NodeHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("holder output");
    assert!(!line.is_empty(), "the Node holder exited early");
    line
}

fn options() -> LockOptions {
    LockOptions::builder()
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn backend(server: &RedisServer) -> Arc<dyn RedisBackend> {
    Arc::new(
        RedisRsBackend::connect(&server.url())
            .await
            .expect("connect"),
    )
}

#[test]
#[ignore = "needs Node.js and npm: cargo test --test node_interop -- --ignored"]
fn mutex_excludes_across_languages() {
    let server = start_server();
    tokio_runtime().block_on(async {
        let mutex = Mutex::with_options(backend(&server).await, "shared", options()).unwrap();
        let node = NodeHolder::start(&server, "mutex", "shared", 0, 0, None);
        assert!(node.acquired);
        assert!(
            mutex.try_acquire().await.unwrap().is_none(),
            "Rust got a mutex Node holds"
        );
        node.release();

        let guard = mutex
            .try_acquire()
            .await
            .unwrap()
            .expect("free after Node released");
        let node = NodeHolder::start(&server, "mutex", "shared", 0, 0, None);
        assert!(!node.acquired, "Node got a mutex Rust holds");
        node.leave();
        guard.release().await.unwrap();
    });
}

#[test]
#[ignore = "needs Node.js and npm: cargo test --test node_interop -- --ignored"]
fn semaphores_count_holders_of_both_languages() {
    let server = start_server();
    tokio_runtime().block_on(async {
        let b = backend(&server).await;
        let rust = Semaphore::with_options(b.clone(), "pool", 3, options()).unwrap();
        let r1 = rust.acquire().await.unwrap();
        let n1 = NodeHolder::start(&server, "semaphore", "pool", 3, 0, None);
        assert!(n1.acquired);
        let n2 = NodeHolder::start(&server, "multi", "pool", 3, 2, None);
        assert!(!n2.acquired, "2 permits do not fit beside 2 holders of 3");
        n2.leave();
        let r2 = rust.acquire().await.unwrap();
        let n3 = NodeHolder::start(&server, "semaphore", "pool", 3, 0, None);
        assert!(!n3.acquired, "a 4th holder of 3");
        n3.leave();
        assert!(rust.try_acquire().await.unwrap().is_none());
        n1.release();
        r1.release().await.unwrap();

        // A Rust MultiSemaphore and Node semaphores share the slots too:
        // r2 holds 1 of 3, the multi-semaphore takes the other 2.
        let multi = MultiSemaphore::with_options(b, "pool", 3, 2, options()).unwrap();
        let m = multi
            .try_acquire()
            .await
            .unwrap()
            .expect("2 permits beside 1 holder of 3");
        let n4 = NodeHolder::start(&server, "semaphore", "pool", 3, 0, None);
        assert!(!n4.acquired, "Node got a 4th slot of 3");
        n4.leave();
        m.release().await.unwrap();
        let n5 = NodeHolder::start(&server, "semaphore", "pool", 3, 0, None);
        assert!(n5.acquired);
        n5.release();
        r2.release().await.unwrap();
        let left = server
            .command(&["ZCARD", "semaphore:pool"])
            .unwrap()
            .as_integer();
        assert_eq!(left, Some(0));
    });
}

#[test]
#[ignore = "needs Node.js and npm: cargo test --test node_interop -- --ignored"]
fn holds_are_handed_over_in_both_directions() {
    let server = start_server();
    tokio_runtime().block_on(async {
        let b = backend(&server).await;
        // Node acquires, Rust takes over with the identifier.
        let node = NodeHolder::start(&server, "mutex", "job", 0, 0, None);
        assert!(node.acquired);
        let id = node.identifier.clone();
        node.leave();
        let takeover = LockOptions::builder()
            .identifier(&id)
            .acquired_externally(true)
            .build()
            .unwrap();
        let guard = Mutex::with_options(b.clone(), "job", takeover)
            .unwrap()
            .acquire()
            .await
            .unwrap();
        assert_eq!(
            server.command(&["GET", "mutex:job"]).unwrap().as_str(),
            Some(id.as_str())
        );
        guard.release().await.unwrap();

        // Rust acquires and detaches, Node takes over.
        let id = Mutex::with_options(b.clone(), "job", options())
            .unwrap()
            .acquire()
            .await
            .unwrap()
            .detach();
        let node = NodeHolder::start(&server, "mutex", "job", 0, 0, Some(&id));
        assert!(node.acquired, "Node could not take over the Rust hold");
        node.release();
        assert!(server.command(&["GET", "mutex:job"]).unwrap().is_nil());

        // The same for a multi-semaphore hold.
        let id = MultiSemaphore::with_options(b, "gpu", 4, 2, options())
            .unwrap()
            .acquire()
            .await
            .unwrap()
            .detach();
        let node = NodeHolder::start(&server, "multi", "gpu", 4, 2, Some(&id));
        assert!(
            node.acquired,
            "Node could not take over the Rust multi-semaphore hold"
        );
        node.release();
        let left = server
            .command(&["ZCARD", "semaphore:gpu"])
            .unwrap()
            .as_integer();
        assert_eq!(left, Some(0));
    });
}
