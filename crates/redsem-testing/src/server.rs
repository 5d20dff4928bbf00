//! [`RedisServer`]: one private `redis-server` on a free loopback port.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::TestingError;
use crate::resp::{self, RespValue};
use crate::util::{self, POLL_INTERVAL};
use crate::wrapper::ServerProcess;

/// How long a starting server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports to try when the chosen one turns out to be taken.
const START_ATTEMPTS: usize = 5;
/// How long `stop()` waits for the port to refuse connections.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-step time-out of [`RedisServer::command`].
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Time-out of one readiness probe (short: we poll).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Lines of the server log quoted in start errors.
const LOG_LINES: usize = 20;

/// A private `redis-server` process for one test, on a free port of 127.0.0.1.
///
/// Data lives only in memory (`--save "" --appendonly no`) and the working dir
/// is a fresh temp dir. Dropping the handle kills the server and removes the
/// dir; if the test process dies without unwinding, the wrapper the server was
/// started through kills it (see the crate docs).
///
/// State-changing methods take `&mut self`: only the owner of a server may
/// stop, pause or restart it (servers shared via a `static` stay untouched).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// The cluster bus port, for nodes started in cluster mode.
    bus_port: Option<u16>,
    /// Runs as a Sentinel (`redis-server <dir>/sentinel.conf --sentinel`).
    sentinel: bool,
    dir: PathBuf,
    binary: PathBuf,
    /// All arguments after the binary, kept so `start_again` reuses them.
    args: Vec<String>,
    /// `None` while stopped.
    process: Option<ServerProcess>,
    paused: bool,
}

impl RedisServer {
    /// Starts a server with the default test configuration.
    pub fn start() -> Result<RedisServer, TestingError> {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments appended to the
    /// defaults (later arguments win, so defaults can be overridden), e.g.
    /// `&["--maxmemory", "10mb"]`.
    pub fn start_with(extra_args: &[&str]) -> Result<RedisServer, TestingError> {
        Self::launch(extra_args, false)
    }

    /// Starts a server, in cluster mode if `cluster` is set (then a free bus
    /// port is chosen too). Retries with fresh ports when the start fails
    /// because a port was taken by someone else in the meantime.
    pub(crate) fn launch(extra_args: &[&str], cluster: bool) -> Result<RedisServer, TestingError> {
        Self::launch_as(extra_args, cluster, false)
    }

    /// Starts a Sentinel: `extra_args` are its configuration (`--sentinel
    /// monitor ...`), written by it to `sentinel.conf` in its dir.
    pub(crate) fn launch_sentinel(extra_args: &[&str]) -> Result<RedisServer, TestingError> {
        Self::launch_as(extra_args, false, true)
    }

    fn launch_as(
        extra_args: &[&str],
        cluster: bool,
        sentinel: bool,
    ) -> Result<RedisServer, TestingError> {
        let binary = util::find_program("redis-server", "redis-server")?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = util::make_temp_dir()?;
            let mut server = RedisServer {
                port: 0,
                bus_port: None,
                sentinel,
                args: Vec::new(),
                binary: binary.clone(),
                dir,
                process: None,
                paused: false,
            };
            server.port = util::pick_free_port()?;
            if cluster {
                server.bus_port = Some(util::pick_free_port()?);
            }
            server.args = server.build_args(extra_args)?;
            match server.boot() {
                Ok(()) => return Ok(server),
                // Dropping `server` removes its dir; try again on new ports.
                Err(e @ TestingError::StartFailed { .. }) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(match last_error {
            Some(TestingError::StartFailed { port, reason, log }) => TestingError::StartFailed {
                port,
                reason: format!(
                    "{reason} (gave up after {START_ATTEMPTS} attempts on fresh ports)"
                ),
                log,
            },
            Some(other) => other,
            None => TestingError::InvalidArgument("no start attempt was made".into()),
        })
    }

    fn build_args(&self, extra_args: &[&str]) -> Result<Vec<String>, TestingError> {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args = Vec::new();
        if self.sentinel {
            // A Sentinel needs a config file of its own to write, first.
            let config = self.dir.join("sentinel.conf");
            fs::write(&config, "")
                .map_err(|e| TestingError::io(format!("creating {}", config.display()), e))?;
            args.extend([config.to_string_lossy().into_owned(), "--sentinel".into()]);
        }
        args.extend([
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--protected-mode".into(),
            "no".into(),
            "--dir".into(),
            dir.clone(),
        ]);
        if let Some(bus_port) = self.bus_port {
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus_port.to_string(),
                    "--cluster-config-file",
                    &format!("{dir}/nodes.conf"),
                    "--cluster-node-timeout",
                    "2000",
                ]
                .map(String::from),
            );
        }
        args.extend(extra_args.iter().map(|a| (*a).to_owned()));
        Ok(args)
    }

    /// Spawns the process and waits until it answers PING as itself.
    fn boot(&mut self) -> Result<(), TestingError> {
        let log = self.log_path();
        let process = ServerProcess::spawn(&self.binary, &self.args, &log)?;
        let pid = process.pid();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = process.exit_status() {
                return Err(TestingError::StartFailed {
                    port: self.port,
                    reason: format!("redis-server (pid {pid}) exited with status {status}"),
                    log: util::log_tail(&log, LOG_LINES),
                });
            }
            if self.answers_as(pid) {
                self.process = Some(process);
                self.paused = false;
                return Ok(());
            }
            if Instant::now() >= deadline {
                drop(process); // kills it
                return Err(TestingError::Timeout {
                    what: format!(
                        "redis-server (pid {pid}) to answer PING on port {}; log:\n{}",
                        self.port,
                        util::log_tail(&log, LOG_LINES)
                    ),
                    after: START_TIMEOUT,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// True if the server on our port answers PING and is the process `pid`
    /// (not some other Redis that grabbed the port before ours could).
    fn answers_as(&self, pid: u32) -> bool {
        let ask = |args: &[&str]| resp::command(self.addr(), args, PROBE_TIMEOUT);
        let pong = matches!(ask(&["PING"]), Ok(RespValue::Simple(s)) if s == "PONG");
        pong && ask(&["INFO", "server"]).is_ok_and(|info| {
            info.as_str().is_some_and(|text| {
                text.lines()
                    .any(|l| l.trim() == format!("process_id:{pid}"))
            })
        })
    }

    /// The TCP port the server listens on (stable across `stop`/`start_again`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster bus port, if the server runs in cluster mode.
    pub fn bus_port(&self) -> Option<u16> {
        self.bus_port
    }

    /// `redis://127.0.0.1:<port>`, for handing to a Redis client.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        util::loopback(self.port)
    }

    /// The pid of the `redis-server` process; `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// The server's private working dir (holds `redis.log`, and `nodes.conf`
    /// for cluster nodes).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file the server's output is appended to (useful when debugging).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// True if the server was started and has neither been stopped nor died.
    pub fn is_running(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|p| p.exit_status().is_none())
    }

    /// True between [`pause`](Self::pause) and [`resume`](Self::resume).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Kills the server with SIGKILL (a crash, not a clean shutdown) and waits,
    /// bounded, until its port refuses connections. Idempotent.
    pub fn stop(&mut self) -> Result<(), TestingError> {
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };
        process.shutdown();
        self.paused = false;
        util::wait_port_refuses(self.port, STOP_TIMEOUT)
    }

    /// Starts the server again on the same port and with the same arguments,
    /// with empty data (like a restart without persistence; cluster nodes keep
    /// their `nodes.conf`). A running server is killed first. Fails, without
    /// trying other ports, if the port stays taken.
    pub fn start_again(&mut self) -> Result<(), TestingError> {
        self.stop()?;
        let mut last_error = None;
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                thread::sleep(Duration::from_millis(200));
            }
            match self.boot() {
                Ok(()) => return Ok(()),
                Err(e @ TestingError::StartFailed { .. }) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| TestingError::InvalidArgument("no restart attempt was made".into())))
    }

    /// Freezes the server with SIGSTOP: connections are still accepted by the
    /// kernel but nothing is answered, like a stalled or partitioned node.
    /// Returns once the process is actually stopped.
    pub fn pause(&mut self) -> Result<(), TestingError> {
        if !self.paused {
            self.running_process()?.set_stopped(true)?;
            self.paused = true;
        }
        Ok(())
    }

    /// Unfreezes a paused server with SIGCONT.
    pub fn resume(&mut self) -> Result<(), TestingError> {
        if self.paused {
            self.running_process()?.set_stopped(false)?;
            self.paused = false;
        }
        Ok(())
    }

    fn running_process(&self) -> Result<&ServerProcess, TestingError> {
        self.process
            .as_ref()
            .ok_or_else(|| TestingError::NotRunning(format!("port {} is stopped", self.port)))
    }

    /// Sends one command and returns the reply (Redis error replies are
    /// returned as [`RespValue::Error`]). Each step is bounded by 5 s.
    pub fn command(&self, args: &[&str]) -> Result<RespValue, TestingError> {
        self.command_timeout(args, COMMAND_TIMEOUT)
    }

    /// Like [`command`](Self::command) with a caller-chosen time-out per step;
    /// a short one makes a paused server show up as a time-out quickly.
    pub fn command_timeout(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<RespValue, TestingError> {
        resp::command(self.addr(), args, timeout)
    }

    /// Deletes all keys (`FLUSHALL`).
    pub fn flushall(&self) -> Result<(), TestingError> {
        expect_ok(&["FLUSHALL"], self.command(&["FLUSHALL"])?)
    }
}

/// Turns anything but `+OK` into an error naming the command.
pub(crate) fn expect_ok(args: &[&str], reply: RespValue) -> Result<(), TestingError> {
    if reply.is_ok() {
        Ok(())
    } else {
        Err(TestingError::UnexpectedReply {
            command: args.join(" "),
            reply: reply.to_string(),
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Dropping the process SIGKILLs the server (paused or not) and waits
        // for the wrapper to reap it; only then is the dir removed.
        drop(self.process.take());
        let _ = fs::remove_dir_all(&self.dir);
    }
}
