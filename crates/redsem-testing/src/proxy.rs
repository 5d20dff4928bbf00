//! [`FaultProxy`]: a TCP proxy in front of a server that a test switches at
//! run time between forwarding, added latency, black-holing and refusing, and
//! that can drop every connection or move to another upstream.
//!
//! Design: one acceptor thread polls a non-blocking listener; each accepted
//! connection gets a handler thread that connects upstream and then runs four
//! pumps (a reader and a writer per direction, joined by a channel so latency
//! delays chunks without reordering them). Every socket has short time-outs so
//! each thread notices a closed connection or a dropped proxy within
//! [`IO_POLL`]; nothing blocks without bound.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::TestingError;
use crate::util;

/// How often the acceptor polls its non-blocking listener.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Socket read/write time-out: how soon a blocked pump notices a closed
/// connection, a stopping proxy or the end of a black hole.
const IO_POLL: Duration = Duration::from_millis(50);
/// Bound for connecting to the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long dropping the proxy waits for its threads to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`FaultProxy::wait_for`] re-reads the counters.
const WAIT_POLL: Duration = Duration::from_millis(5);
/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;

/// What a [`FaultProxy`] does with traffic; set with
/// [`FaultProxy::set_mode`] or the shorthands [`pass`](FaultProxy::pass),
/// [`latency`](FaultProxy::latency), [`blackhole`](FaultProxy::blackhole)
/// and [`refuse`](FaultProxy::refuse).
///
/// ```
/// use std::time::Duration;
/// use redsem_testing::{FaultProxy, ProxyMode};
///
/// # fn main() -> Result<(), redsem_testing::TestingError> {
/// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
/// assert_eq!(proxy.mode(), ProxyMode::Pass);
/// proxy.set_mode(ProxyMode::Latency(Duration::from_millis(50)));
/// assert_eq!(proxy.mode(), ProxyMode::Latency(Duration::from_millis(50)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyMode {
    /// Forward every byte at once, both ways.
    Pass,
    /// Forward every byte, each chunk delayed by this much in each direction
    /// (order is preserved; the delay is fixed when a chunk is read).
    Latency(Duration),
    /// Accept connections but answer nothing: bytes from either side are
    /// read and dropped, on existing connections too, and new connections do
    /// not reach the upstream. A request swallowed here is never answered,
    /// also not after [`FaultProxy::pass`], just as if the network had lost it.
    Blackhole,
    /// Close new connections as soon as they are accepted (the client sees
    /// the connection closed before any reply). Existing connections keep
    /// forwarding; combine with [`FaultProxy::reset_all`] to cut them too.
    Refuse,
}

/// Counters of a [`FaultProxy`], from [`FaultProxy::stats`].
///
/// ```
/// use redsem_testing::FaultProxy;
///
/// # fn main() -> Result<(), redsem_testing::TestingError> {
/// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
/// let stats = proxy.stats();
/// assert_eq!((stats.accepted, stats.active), (0, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted, including those closed at once because of
    /// [`ProxyMode::Refuse`] or an unreachable upstream.
    pub accepted: u64,
    /// Connections closed at once because the mode was [`ProxyMode::Refuse`].
    pub refused: u64,
    /// Connections closed because the upstream could not be reached.
    pub upstream_failures: u64,
    /// Connections closed by [`FaultProxy::reset_all`].
    pub resets: u64,
    /// Connections currently open.
    pub active: usize,
    /// Bytes delivered from clients to the upstream.
    pub bytes_to_upstream: u64,
    /// Bytes delivered from the upstream to clients.
    pub bytes_to_client: u64,
    /// Bytes dropped by [`ProxyMode::Blackhole`], both directions.
    pub bytes_swallowed: u64,
}

/// A fault-injecting TCP proxy on a free loopback port, in front of one
/// upstream server (normally a [`RedisServer`](crate::RedisServer)).
///
/// Clients connect to [`url`](Self::url) / [`addr`](Self::addr); each
/// connection is forwarded byte for byte to the upstream, until the test
/// switches the proxy to another [`ProxyMode`], drops every connection with
/// [`reset_all`](Self::reset_all) or sends later connections elsewhere with
/// [`set_upstream`](Self::set_upstream) /
/// [`fail_over_to`](Self::fail_over_to). All methods take `&self`, so a proxy
/// can be shared (e.g. in an `Arc`) with the code that drives the faults.
///
/// Dropping the proxy closes its port and every connection, and waits
/// (bounded, a few seconds at most) for its threads to end; this also
/// happens while a failing test unwinds.
///
/// ```no_run
/// use std::time::Duration;
/// use redsem_testing::{FaultProxy, RedisServer, RespConnection};
///
/// # fn main() -> Result<(), redsem_testing::TestingError> {
/// let primary = RedisServer::start()?;
/// let proxy = FaultProxy::start(primary.addr())?;
/// let url = proxy.url(); // give this to the client under test
/// # let _ = url;
///
/// let mut conn = RespConnection::connect(proxy.addr(), Duration::from_secs(1))?;
/// assert_eq!(conn.command(&["PING"])?.as_str(), Some("PONG"));
///
/// proxy.latency(Duration::from_millis(100)); // a slow network
/// proxy.blackhole(); // a partition: nothing is answered
/// proxy.pass(); // healed
/// proxy.reset_all(); // every connection drops
///
/// let replica = RedisServer::start()?;
/// proxy.fail_over_to(replica.addr()); // new connections reach the replica
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 that forwards to
    /// `upstream`, in [`ProxyMode::Pass`]. The upstream is only connected
    /// to when a client connects, so it need not be running yet.
    ///
    /// ```
    /// use redsem_testing::FaultProxy;
    ///
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert_ne!(proxy.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(upstream: SocketAddr) -> Result<FaultProxy, TestingError> {
        let listener = TcpListener::bind(util::loopback(0))
            .map_err(|e| TestingError::io("binding the proxy to 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestingError::io("reading the proxy's port", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| TestingError::io("making the proxy listener non-blocking", e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: ProxyMode::Pass,
                upstream,
                conns: HashMap::new(),
                next_id: 0,
            }),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            threads: Mutex::new(0),
            threads_done: Condvar::new(),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("redsem-proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &acceptor_shared))
            .map_err(|e| TestingError::io("spawning the proxy's acceptor thread", e))?;
        Ok(FaultProxy {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    /// The port the proxy listens on.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert_eq!(proxy.addr().port(), proxy.port());
    /// # Ok(())
    /// # }
    /// ```
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`: where clients connect.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert!(proxy.addr().ip().is_loopback());
    /// # Ok(())
    /// # }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:<port>/`, for handing to a Redis client.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/", proxy.port()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.addr.port())
    }

    /// The upstream that new connections go to.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let upstream = "127.0.0.1:9".parse().expect("address");
    /// let proxy = FaultProxy::start(upstream)?;
    /// assert_eq!(proxy.upstream(), upstream);
    /// # Ok(())
    /// # }
    /// ```
    pub fn upstream(&self) -> SocketAddr {
        self.shared.lock().upstream
    }

    /// Sends later connections to `upstream` and returns the previous one.
    /// Open connections stay with the server they are connected to; use
    /// [`fail_over_to`](Self::fail_over_to) to drop them in the same step.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// let previous = proxy.set_upstream("127.0.0.1:7".parse().expect("address"));
    /// assert_eq!(previous.port(), 9);
    /// assert_eq!(proxy.upstream().port(), 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_upstream(&self, upstream: SocketAddr) -> SocketAddr {
        std::mem::replace(&mut self.shared.lock().upstream, upstream)
    }

    /// A failover as clients see it: in one step, later connections go to
    /// `upstream` and every open connection is closed (so none can still
    /// reach the old server afterwards). Returns how many were closed.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert_eq!(proxy.fail_over_to("127.0.0.1:7".parse().expect("address")), 0);
    /// assert_eq!(proxy.upstream().port(), 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn fail_over_to(&self, upstream: SocketAddr) -> usize {
        let mut state = self.shared.lock();
        state.upstream = upstream;
        self.shared.close_all(&mut state, true)
    }

    /// The current mode.
    ///
    /// ```
    /// # use redsem_testing::{FaultProxy, ProxyMode};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// proxy.refuse();
    /// assert_eq!(proxy.mode(), ProxyMode::Refuse);
    /// # Ok(())
    /// # }
    /// ```
    pub fn mode(&self) -> ProxyMode {
        self.shared.mode()
    }

    /// Switches to `mode` and returns the previous one. It applies at once
    /// to new connections and to bytes not yet delivered on open ones.
    ///
    /// ```
    /// # use redsem_testing::{FaultProxy, ProxyMode};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert_eq!(proxy.set_mode(ProxyMode::Blackhole), ProxyMode::Pass);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_mode(&self, mode: ProxyMode) -> ProxyMode {
        std::mem::replace(&mut self.shared.lock().mode, mode)
    }

    /// Normal forwarding, no added latency ([`ProxyMode::Pass`]).
    ///
    /// ```
    /// # use redsem_testing::{FaultProxy, ProxyMode};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// proxy.blackhole();
    /// proxy.pass();
    /// assert_eq!(proxy.mode(), ProxyMode::Pass);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pass(&self) {
        self.set_mode(ProxyMode::Pass);
    }

    /// Delays each chunk by `delay` in each direction
    /// ([`ProxyMode::Latency`]); a request/reply round trip takes at least
    /// twice `delay`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use redsem_testing::{FaultProxy, ProxyMode};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// proxy.latency(Duration::from_millis(200));
    /// assert_eq!(proxy.mode(), ProxyMode::Latency(Duration::from_millis(200)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn latency(&self, delay: Duration) {
        self.set_mode(ProxyMode::Latency(delay));
    }

    /// Accepts but answers nothing until [`pass`](Self::pass)
    /// ([`ProxyMode::Blackhole`]): a partitioned or frozen server as the
    /// client sees it, without signalling any process.
    ///
    /// ```
    /// # use redsem_testing::{FaultProxy, ProxyMode};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// proxy.blackhole();
    /// assert_eq!(proxy.mode(), ProxyMode::Blackhole);
    /// # Ok(())
    /// # }
    /// ```
    pub fn blackhole(&self) {
        self.set_mode(ProxyMode::Blackhole);
    }

    /// Closes new connections at once until [`pass`](Self::pass)
    /// ([`ProxyMode::Refuse`]).
    ///
    /// ```
    /// # use redsem_testing::{FaultProxy, ProxyMode};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// proxy.refuse();
    /// assert_eq!(proxy.mode(), ProxyMode::Refuse);
    /// # Ok(())
    /// # }
    /// ```
    pub fn refuse(&self) {
        self.set_mode(ProxyMode::Refuse);
    }

    /// Closes every open connection at once (both sockets of each are shut
    /// down, so the client reads end-of-stream); new connections are
    /// handled as the mode says. Returns how many connections were closed.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert_eq!(proxy.reset_all(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reset_all(&self) -> usize {
        let mut state = self.shared.lock();
        self.shared.close_all(&mut state, true)
    }

    /// The counters so far.
    ///
    /// ```
    /// # use redsem_testing::FaultProxy;
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let proxy = FaultProxy::start("127.0.0.1:9".parse().expect("address"))?;
    /// assert_eq!(proxy.stats().bytes_to_upstream, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> ProxyStats {
        let active = self.shared.lock().conns.len();
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Acquire);
        ProxyStats {
            accepted: get(&c.accepted),
            refused: get(&c.refused),
            upstream_failures: get(&c.upstream_failures),
            resets: get(&c.resets),
            active,
            bytes_to_upstream: get(&c.bytes_to_upstream),
            bytes_to_client: get(&c.bytes_to_client),
            bytes_swallowed: get(&c.bytes_swallowed),
        }
    }

    /// Waits, bounded by `timeout`, until `condition` holds for the
    /// counters, and returns them; `what` describes the condition in the
    /// time-out error. Handy to wait for a client to (re)connect.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redsem_testing::{FaultProxy, RedisServer, RespConnection};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// # let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start(server.addr())?;
    /// let _conn = RespConnection::connect(proxy.addr(), Duration::from_secs(1))?;
    /// proxy.wait_for("one open connection", Duration::from_secs(2), |s| s.active == 1)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&ProxyStats) -> bool,
    ) -> Result<ProxyStats, TestingError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if condition(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(TestingError::Timeout {
                    what: format!("proxy {}: {what}; last counters: {stats:?}", self.addr),
                    after: timeout,
                });
            }
            thread::sleep(WAIT_POLL);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        // The acceptor polls `stopping`, so this join is bounded; it also
        // drops the listener, closing the port.
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        {
            let mut state = self.shared.lock();
            self.shared.close_all(&mut state, false);
        }
        // Every pump notices its closed connection within IO_POLL; a thread
        // stuck anyway is left behind rather than hanging the test.
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut threads = self
            .shared
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            threads = self
                .shared
                .threads_done
                .wait_timeout(threads, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    upstream_failures: AtomicU64,
    resets: AtomicU64,
    bytes_to_upstream: AtomicU64,
    bytes_to_client: AtomicU64,
    bytes_swallowed: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::AcqRel);
}

#[derive(Debug)]
struct State {
    mode: ProxyMode,
    upstream: SocketAddr,
    /// Open connections, by id. A connection leaves the map when it closes.
    conns: HashMap<u64, Arc<Conn>>,
    next_id: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
    counters: Counters,
    /// Live connection threads (the acceptor is joined separately).
    threads: Mutex<usize>,
    threads_done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mode(&self) -> ProxyMode {
        self.lock().mode
    }

    /// The delay for a chunk read now.
    fn delay(&self) -> Duration {
        match self.mode() {
            ProxyMode::Latency(delay) => delay,
            _ => Duration::ZERO,
        }
    }

    /// Closes every connection; `count` says whether they count as resets.
    fn close_all(&self, state: &mut State, count: bool) -> usize {
        let closed = state.conns.len();
        for (_, conn) in state.conns.drain() {
            conn.shut_down();
        }
        if count {
            add(&self.counters.resets, closed);
        }
        closed
    }

    /// Spawns a tracked connection thread; `false` if it could not be spawned.
    fn spawn(self: &Arc<Self>, name: &str, body: impl FnOnce() + Send + 'static) -> bool {
        *self.threads.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new().name(name.into()).spawn(move || {
            let _done = ThreadDone(shared);
            body();
        });
        if spawned.is_err() {
            self.thread_finished();
        }
        spawned.is_ok()
    }

    fn thread_finished(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        *threads = threads.saturating_sub(1);
        self.threads_done.notify_all();
    }
}

/// Counts a connection thread as finished, also if it panics.
struct ThreadDone(Arc<Shared>);

impl Drop for ThreadDone {
    fn drop(&mut self) {
        self.0.thread_finished();
    }
}

/// One proxied connection: the client socket, the upstream socket once
/// connected, and whether it has been closed.
#[derive(Debug)]
struct Conn {
    id: u64,
    client: TcpStream,
    upstream: Mutex<Option<TcpStream>>,
    closed: AtomicBool,
    /// Directions that ended with an end-of-stream passed on (0..=2).
    halves_done: AtomicU8,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Shuts both sockets down; the pumps notice and end. Callers hold the
    /// state lock, which orders this against [`attach_upstream`].
    fn shut_down(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.client.shutdown(Shutdown::Both);
        let upstream = self.upstream.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(upstream) = upstream.as_ref() {
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }

    /// Closes the connection and forgets it.
    fn close(&self, shared: &Shared) {
        let mut state = shared.lock();
        state.conns.remove(&self.id);
        self.shut_down();
    }
}

/// The body of a pump thread.
type Pump = Box<dyn FnOnce() + Send>;

/// A chunk of bytes in flight, due for delivery at `due`.
#[derive(Debug)]
struct Chunk {
    due: Instant,
    data: Vec<u8>,
}

/// Which way a pump moves bytes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    ToUpstream,
    ToClient,
}

impl Direction {
    fn delivered<'a>(&self, counters: &'a Counters) -> &'a AtomicU64 {
        match self {
            Direction::ToUpstream => &counters.bytes_to_upstream,
            Direction::ToClient => &counters.bytes_to_client,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Blocking mode, no Nagle, and short time-outs so no pump blocks for long.
fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_POLL))?;
    stream.set_write_timeout(Some(IO_POLL))
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => accepted(shared, stream),
            // Nothing pending, or a transient failure (e.g. out of file
            // descriptors): poll again shortly.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Handles one accepted client: refuses it or registers it and starts its
/// handler thread.
fn accepted(shared: &Arc<Shared>, client: TcpStream) {
    add(&shared.counters.accepted, 1);
    let conn = {
        let mut state = shared.lock();
        if state.mode == ProxyMode::Refuse {
            add(&shared.counters.refused, 1);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        let Ok(handle) = configure(&client).and_then(|()| client.try_clone()) else {
            return;
        };
        let conn = Arc::new(Conn {
            id: state.next_id,
            client: handle,
            upstream: Mutex::new(None),
            closed: AtomicBool::new(false),
            halves_done: AtomicU8::new(0),
        });
        state.next_id += 1;
        state.conns.insert(conn.id, Arc::clone(&conn));
        conn
    };
    let handler_shared = Arc::clone(shared);
    let handler_conn = Arc::clone(&conn);
    if !shared.spawn("redsem-proxy-conn", move || {
        handle(&handler_shared, &handler_conn, client);
    }) {
        conn.close(shared);
    }
}

/// The life of one connection: swallow while black-holed, connect
/// upstream, then pump both ways.
fn handle(shared: &Arc<Shared>, conn: &Arc<Conn>, mut client: TcpStream) {
    // A connection accepted during a black hole does not reach the upstream
    // until the black hole ends; what the client sends meanwhile is lost.
    // Bytes read just after it ended are kept for the upstream.
    let mut early = Vec::new();
    let mut buf = vec![0; CHUNK];
    while early.is_empty() && shared.mode() == ProxyMode::Blackhole {
        if conn.is_closed() {
            return;
        }
        match client.read(&mut buf) {
            Ok(0) => return conn.close(shared),
            Ok(n) if shared.mode() == ProxyMode::Blackhole => {
                add(&shared.counters.bytes_swallowed, n);
            }
            Ok(n) => early.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return conn.close(shared),
        }
    }
    drop(buf);
    let target = shared.lock().upstream;
    let upstream = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(upstream) => upstream,
        Err(_) => {
            add(&shared.counters.upstream_failures, 1);
            return conn.close(shared);
        }
    };
    let Ok((up_reader, up_writer, client_writer)) = configure(&upstream).and_then(|()| {
        Ok((
            upstream.try_clone()?,
            upstream.try_clone()?,
            client.try_clone()?,
        ))
    }) else {
        return conn.close(shared);
    };
    if !attach_upstream(shared, conn, upstream) {
        return;
    }

    let (to_upstream, up_queue) = mpsc::channel();
    let (to_client, client_queue) = mpsc::channel();
    let pumps: [(&str, Pump); 3] = [
        ("redsem-proxy-write-up", {
            let (shared, conn) = (Arc::clone(shared), Arc::clone(conn));
            Box::new(move || {
                write_pump(&shared, &conn, up_writer, &up_queue, Direction::ToUpstream)
            })
        }),
        ("redsem-proxy-read-down", {
            let (shared, conn) = (Arc::clone(shared), Arc::clone(conn));
            Box::new(move || read_pump(&shared, &conn, up_reader, &to_client))
        }),
        ("redsem-proxy-write-down", {
            let (shared, conn) = (Arc::clone(shared), Arc::clone(conn));
            Box::new(move || {
                write_pump(
                    &shared,
                    &conn,
                    client_writer,
                    &client_queue,
                    Direction::ToClient,
                );
            })
        }),
    ];
    for (name, pump) in pumps {
        if !shared.spawn(name, pump) {
            return conn.close(shared);
        }
    }
    if !early.is_empty() {
        let _ = to_upstream.send(Chunk {
            due: Instant::now() + shared.delay(),
            data: early,
        });
    }
    // This thread reads from the client.
    read_pump(shared, conn, client, &to_upstream);
}

/// Stores the upstream socket so resets reach it; `false` (and the socket
/// shut down) if the connection was closed while connecting.
fn attach_upstream(shared: &Shared, conn: &Conn, upstream: TcpStream) -> bool {
    let state = shared.lock();
    if conn.is_closed() || shared.stopping.load(Ordering::Acquire) {
        drop(state);
        let _ = upstream.shutdown(Shutdown::Both);
        return false;
    }
    *conn.upstream.lock().unwrap_or_else(PoisonError::into_inner) = Some(upstream);
    drop(state);
    true
}

/// Reads chunks from `source` and queues them, stamped with their due time.
/// End-of-stream just ends the pump: the writer then passes it on.
fn read_pump(shared: &Shared, conn: &Conn, mut source: TcpStream, queue: &Sender<Chunk>) {
    let mut buf = vec![0; CHUNK];
    while !conn.is_closed() {
        match source.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let chunk = Chunk {
                    due: Instant::now() + shared.delay(),
                    data: buf[..n].to_vec(),
                };
                if queue.send(chunk).is_err() {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return conn.close(shared),
        }
    }
}

/// Delivers queued chunks to `sink` when due (or drops them while the proxy
/// is black-holed). Once the reader ended and the queue is drained, passes
/// the end-of-stream on; the connection closes when both directions did.
fn write_pump(
    shared: &Shared,
    conn: &Conn,
    mut sink: TcpStream,
    queue: &Receiver<Chunk>,
    direction: Direction,
) {
    loop {
        let chunk = match queue.recv_timeout(IO_POLL) {
            Ok(chunk) => chunk,
            Err(RecvTimeoutError::Timeout) if conn.is_closed() => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = sink.shutdown(Shutdown::Write);
                if conn.halves_done.fetch_add(1, Ordering::AcqRel) + 1 >= 2 {
                    conn.close(shared);
                }
                return;
            }
        };
        loop {
            if conn.is_closed() {
                return;
            }
            let now = Instant::now();
            if now >= chunk.due {
                break;
            }
            thread::sleep((chunk.due - now).min(IO_POLL));
        }
        if shared.mode() == ProxyMode::Blackhole {
            add(&shared.counters.bytes_swallowed, chunk.data.len());
            continue;
        }
        if write_all(conn, &mut sink, &chunk.data).is_err() {
            return conn.close(shared);
        }
        add(direction.delivered(&shared.counters), chunk.data.len());
    }
}

/// `write_all` that gives up once the connection is closed.
fn write_all(conn: &Conn, sink: &mut TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        if conn.is_closed() {
            return Err(io::Error::from(ErrorKind::NotConnected));
        }
        match sink.write(data) {
            Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero)),
            Ok(n) => data = &data[n..],
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// An upstream for one connection that echoes every byte and, after the
    /// client's end-of-stream, ends its own side. Every wait is bounded.
    fn echo_server() -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)> {
        let listener = TcpListener::bind(util::loopback(0))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let echo = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(ACCEPT_POLL),
                    Err(e) => return Err(e),
                }
            };
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut buf = vec![0; 4096];
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return stream.shutdown(Shutdown::Write);
                }
                stream.write_all(&buf[..n])?;
            }
        });
        Ok((addr, echo))
    }

    fn live_threads(shared: &Shared) -> usize {
        *shared
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn forwards_bytes_exactly_passes_end_of_stream_and_stops_its_threads() -> TestResult {
        let (upstream, echo) = echo_server()?;
        let proxy = FaultProxy::start(upstream)?;
        let shared = Arc::clone(&proxy.shared);

        let mut client = TcpStream::connect(proxy.addr())?;
        client.set_read_timeout(Some(Duration::from_secs(10)))?;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        // Written from another thread: 300 KB echoed would fill the buffers
        // of a single thread that writes everything before reading.
        let writer = {
            let mut client = client.try_clone()?;
            let data = data.clone();
            thread::spawn(move || -> io::Result<()> {
                client.write_all(&data)?;
                client.shutdown(Shutdown::Write)
            })
        };
        let mut echoed = Vec::new();
        // Ends only when the echo's end-of-stream came through the proxy.
        client.read_to_end(&mut echoed)?;
        writer.join().map_err(|_| "writer panicked")??;
        echo.join().map_err(|_| "echo panicked")??;
        assert!(echoed == data, "echoed bytes differ from the sent ones");

        let stats = proxy.wait_for("the connection to close", Duration::from_secs(5), |s| {
            s.active == 0
        })?;
        assert_eq!(stats.accepted, 1);
        assert_eq!(stats.bytes_to_upstream, data.len() as u64);
        assert_eq!(stats.bytes_to_client, data.len() as u64);
        assert_eq!(stats.bytes_swallowed, 0);

        let started = Instant::now();
        drop(proxy);
        assert!(started.elapsed() < STOP_TIMEOUT, "drop hit its time bound");
        assert_eq!(live_threads(&shared), 0);
        Ok(())
    }

    #[test]
    fn drop_closes_open_connections_and_ends_every_thread() -> TestResult {
        let (upstream, _echo) = echo_server()?;
        let proxy = FaultProxy::start(upstream)?;
        let shared = Arc::clone(&proxy.shared);
        let addr = proxy.addr();
        let mut client = TcpStream::connect(addr)?;
        client.set_read_timeout(Some(Duration::from_secs(10)))?;
        client.write_all(b"ping")?;
        let mut reply = [0; 4];
        client.read_exact(&mut reply)?;
        assert_eq!(&reply, b"ping");
        assert!(live_threads(&shared) >= 4, "four pumps per connection");

        let started = Instant::now();
        drop(proxy);
        assert!(started.elapsed() < STOP_TIMEOUT, "drop hit its time bound");
        assert_eq!(live_threads(&shared), 0);
        // The client reads end-of-stream (or a reset), and the port is closed.
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty());
        let refused = TcpStream::connect(addr);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused),
            "{refused:?}"
        );
        Ok(())
    }
}
