//! The error type of the test-support crate.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

/// Everything that can go wrong while starting, controlling or talking to a
/// test Redis server.
///
/// The messages are written to be read in the output of a failing test, so
/// they name the port, the command and, where it helps, the server log.
#[derive(Debug)]
#[non_exhaustive]
pub enum TestingError {
    /// A required program is not installed. Tests must fail loudly (never skip
    /// silently), and the message says how to install it.
    ProgramNotFound {
        /// The program that was looked up on `PATH` (`redis-server`, `redis-cli`).
        program: &'static str,
        /// The Debian/Ubuntu package that provides it.
        apt_package: &'static str,
    },
    /// An I/O operation failed.
    Io {
        /// What was being done, e.g. "connecting to 127.0.0.1:41234".
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Something did not happen within its time bound (every wait in this
    /// crate is bounded so a broken environment fails instead of hanging).
    Timeout {
        /// What was waited for.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// `redis-server` exited during startup (typically: the port or cluster
    /// bus port was taken by someone else between choosing and binding it).
    StartFailed {
        /// The port the server was asked to listen on.
        port: u16,
        /// Why the start is considered failed.
        reason: String,
        /// The last lines of the server log, if any.
        log: String,
    },
    /// The peer sent bytes that are not valid RESP.
    Protocol(String),
    /// Redis answered, but not with what the harness needed (for example an
    /// error reply where `OK` was expected).
    UnexpectedReply {
        /// The command that was sent.
        command: String,
        /// The reply, rendered for humans.
        reply: String,
    },
    /// Building a Redis Cluster out of started nodes failed.
    ClusterSetup(String),
    /// The operation needs a running server, but it is stopped or has died.
    NotRunning(String),
    /// The caller passed an argument the harness cannot honour.
    InvalidArgument(String),
    /// The process-wide shared cluster could not be started (the original
    /// error is kept as text because it is reported to every caller).
    SharedCluster(String),
}

impl TestingError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        TestingError::Io {
            context: context.into(),
            source,
        }
    }

    /// True if this is a time-out, including a socket read that timed out
    /// (what a command sent to a paused server produces).
    pub fn is_timeout(&self) -> bool {
        match self {
            TestingError::Timeout { .. } => true,
            TestingError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// True if an established connection was closed or reset by the peer
    /// (end of stream, `ECONNRESET`, `EPIPE`, ...), e.g. by
    /// [`FaultProxy::reset_all`](crate::FaultProxy::reset_all).
    ///
    /// ```
    /// use redsem_testing::TestingError;
    /// # fn check(err: TestingError) {
    /// if err.is_connection_closed() {
    ///     // reconnect
    /// }
    /// # }
    /// ```
    pub fn is_connection_closed(&self) -> bool {
        matches!(self, TestingError::Io { source, .. } if matches!(
            source.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotConnected
        ))
    }

    /// True if a connection was refused (what a stopped server produces).
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, TestingError::Io { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused)
    }
}

impl fmt::Display for TestingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestingError::ProgramNotFound {
                program,
                apt_package,
            } => write!(
                f,
                "{program} was not found on PATH; install it (Debian/Ubuntu: \
                 `sudo apt-get install {apt_package}`, macOS: `brew install redis`)"
            ),
            TestingError::Io { context, source } => write!(f, "{context}: {source}"),
            TestingError::Timeout { what, after } => {
                write!(f, "timed out after {after:?} waiting for {what}")
            }
            TestingError::StartFailed { port, reason, log } => {
                write!(f, "redis-server on port {port} failed to start: {reason}")?;
                if !log.is_empty() {
                    write!(f, "\n--- last lines of the redis-server log ---\n{log}")?;
                }
                Ok(())
            }
            TestingError::Protocol(msg) => write!(f, "RESP protocol error: {msg}"),
            TestingError::UnexpectedReply { command, reply } => {
                write!(f, "unexpected reply to `{command}`: {reply}")
            }
            TestingError::ClusterSetup(msg) => write!(f, "Redis Cluster setup failed: {msg}"),
            TestingError::NotRunning(msg) => write!(f, "redis-server is not running: {msg}"),
            TestingError::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            TestingError::SharedCluster(msg) => {
                write!(f, "the shared test cluster could not be started: {msg}")
            }
        }
    }
}

impl Error for TestingError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TestingError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
