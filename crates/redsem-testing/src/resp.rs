//! A deliberately tiny RESP2 client: one command per connection.
//!
//! The harness only needs it for readiness checks, cluster setup and the odd
//! assertion in a test, so it favours obviousness over speed, and it keeps the
//! crate free of Redis-client dependencies (the crates under test bring their own).

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::TestingError;

/// Nested arrays deeper than this are rejected (a garbage peer must not make
/// the parser recurse without bound).
const MAX_DEPTH: usize = 32;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// A simple string, e.g. `+OK`.
    Simple(String),
    /// An error reply, e.g. `-ERR unknown command`. Returned as a value, not
    /// as `Err`, so that tests can assert on Redis errors.
    Error(String),
    /// An integer reply.
    Integer(i64),
    /// A bulk string (binary safe).
    Bulk(Vec<u8>),
    /// An array reply.
    Array(Vec<RespValue>),
    /// The nil bulk string or nil array.
    Nil,
}

impl RespValue {
    /// The text of a simple string, or of a bulk string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RespValue::Simple(s) => Some(s),
            RespValue::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            RespValue::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements of an array reply.
    pub fn as_array(&self) -> Option<&[RespValue]> {
        match self {
            RespValue::Array(items) => Some(items),
            _ => None,
        }
    }

    /// True for the nil reply (e.g. `GET` of a missing key).
    pub fn is_nil(&self) -> bool {
        matches!(self, RespValue::Nil)
    }

    /// True for the simple string `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, RespValue::Simple(s) if s == "OK")
    }

    /// The message of an error reply.
    pub fn error_message(&self) -> Option<&str> {
        match self {
            RespValue::Error(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for RespValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespValue::Simple(s) => write!(f, "{s}"),
            RespValue::Error(e) => write!(f, "(error) {e}"),
            RespValue::Integer(i) => write!(f, "(integer) {i}"),
            RespValue::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            RespValue::Array(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            RespValue::Nil => write!(f, "(nil)"),
        }
    }
}

/// Connects to `addr`, sends one command and reads one reply.
///
/// `timeout` bounds the connect, the write and the read separately, so a
/// paused (SIGSTOPped) server produces a time-out error instead of a hang.
pub(crate) fn command(
    addr: SocketAddr,
    args: &[&str],
    timeout: Duration,
) -> Result<RespValue, TestingError> {
    if args.is_empty() {
        return Err(TestingError::InvalidArgument(
            "a Redis command needs at least one word".into(),
        ));
    }
    let shown = args.join(" ");
    let io_err = |what: &str, e| TestingError::io(format!("{what} `{shown}` ({addr})"), e);

    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| TestingError::io(format!("connecting to {addr}"), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| io_err("configuring the socket for", e))?;

    (&stream)
        .write_all(&encode(args))
        .map_err(|e| io_err("sending", e))?;
    let mut reader = BufReader::new(&stream);
    read_value(&mut reader, 0).map_err(|e| match e {
        TestingError::Io { source, .. } => io_err("reading the reply to", source),
        other => other,
    })
}

/// One persistent RESP2 connection, for tests that need to see what happens
/// to a connection over time (a proxy that stalls or resets it, a server
/// that pauses), where [`RedisServer::command`](crate::RedisServer::command)
/// opens a fresh connection per command.
///
/// Every step is bounded by the time-out given to
/// [`connect`](Self::connect) (changeable with
/// [`set_timeout`](Self::set_timeout)), so a stalled peer shows up as an
/// error for which [`TestingError::is_timeout`] is true, and a dropped
/// connection as one for which [`TestingError::is_connection_closed`] is.
///
/// ```no_run
/// use std::time::Duration;
/// use redsem_testing::{RedisServer, RespConnection};
///
/// # fn main() -> Result<(), redsem_testing::TestingError> {
/// let server = RedisServer::start()?;
/// let mut conn = RespConnection::connect(server.addr(), Duration::from_secs(2))?;
/// assert!(conn.command(&["SET", "k", "v"])?.is_ok());
/// assert_eq!(conn.command(&["GET", "k"])?.as_str(), Some("v"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RespConnection {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl RespConnection {
    /// Connects to `addr`; `timeout` bounds the connect and, later, every
    /// single write and read.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redsem_testing::{RedisServer, RespConnection};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// let server = RedisServer::start()?;
    /// let conn = RespConnection::connect(server.addr(), Duration::from_secs(1))?;
    /// assert_eq!(conn.peer(), server.addr());
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, TestingError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| TestingError::io(format!("connecting to {addr}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| TestingError::io(format!("configuring the socket to {addr}"), e))?;
        let mut conn = RespConnection {
            reader: BufReader::new(stream),
            addr,
        };
        conn.set_timeout(timeout)?;
        Ok(conn)
    }

    /// The address this connection was opened to.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redsem_testing::{RedisServer, RespConnection};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// # let server = RedisServer::start()?;
    /// let conn = RespConnection::connect(server.addr(), Duration::from_secs(1))?;
    /// println!("talking to {}", conn.peer());
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the bound of each later write and read.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redsem_testing::{RedisServer, RespConnection};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// # let server = RedisServer::start()?;
    /// let mut conn = RespConnection::connect(server.addr(), Duration::from_secs(1))?;
    /// conn.set_timeout(Duration::from_millis(200))?; // a stall shows up fast
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), TestingError> {
        let stream = self.reader.get_ref();
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| TestingError::io(format!("setting time-outs on {}", self.addr), e))
    }

    /// Sends one command without waiting for its reply (to pipeline, or to
    /// leave a request in flight); read it later with
    /// [`read_reply`](Self::read_reply).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redsem_testing::{RedisServer, RespConnection};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// # let server = RedisServer::start()?;
    /// let mut conn = RespConnection::connect(server.addr(), Duration::from_secs(1))?;
    /// conn.send(&["PING"])?;
    /// conn.send(&["ECHO", "hi"])?;
    /// assert_eq!(conn.read_reply()?.as_str(), Some("PONG"));
    /// assert_eq!(conn.read_reply()?.as_str(), Some("hi"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(&mut self, args: &[&str]) -> Result<(), TestingError> {
        if args.is_empty() {
            return Err(TestingError::InvalidArgument(
                "a Redis command needs at least one word".into(),
            ));
        }
        self.reader.get_mut().write_all(&encode(args)).map_err(|e| {
            TestingError::io(format!("sending `{}` ({})", args.join(" "), self.addr), e)
        })
    }

    /// Reads one reply (an error reply is returned as [`RespValue::Error`]).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redsem_testing::{RedisServer, RespConnection};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// # let server = RedisServer::start()?;
    /// let mut conn = RespConnection::connect(server.addr(), Duration::from_secs(1))?;
    /// conn.send(&["NOSUCHCOMMAND"])?;
    /// assert!(conn.read_reply()?.error_message().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_reply(&mut self) -> Result<RespValue, TestingError> {
        let addr = self.addr;
        read_value(&mut self.reader, 0).map_err(|e| match e {
            TestingError::Io { source, .. } => {
                TestingError::io(format!("reading a reply from {addr}"), source)
            }
            other => other,
        })
    }

    /// Sends one command and reads its reply.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redsem_testing::{RedisServer, RespConnection};
    /// # fn main() -> Result<(), redsem_testing::TestingError> {
    /// # let server = RedisServer::start()?;
    /// let mut conn = RespConnection::connect(server.addr(), Duration::from_secs(1))?;
    /// assert_eq!(conn.command(&["INCR", "n"])?.as_integer(), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn command(&mut self, args: &[&str]) -> Result<RespValue, TestingError> {
        self.send(args)?;
        self.read_reply()
    }
}

/// Encodes a command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one CRLF-terminated line, without the terminator.
fn read_line(reader: &mut impl BufRead) -> Result<String, TestingError> {
    let mut line = Vec::new();
    let n = reader
        .read_until(b'\n', &mut line)
        .map_err(|e| TestingError::io("reading", e))?;
    if n == 0 {
        return Err(TestingError::io(
            "reading",
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"),
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(TestingError::Protocol("line not terminated by CRLF".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| TestingError::Protocol("line is not UTF-8".into()))
}

fn parse_int(text: &str) -> Result<i64, TestingError> {
    text.parse()
        .map_err(|_| TestingError::Protocol(format!("bad integer {text:?}")))
}

/// Reads one RESP2 value.
fn read_value(reader: &mut impl BufRead, depth: usize) -> Result<RespValue, TestingError> {
    if depth > MAX_DEPTH {
        return Err(TestingError::Protocol("arrays nested too deeply".into()));
    }
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
    match kind {
        "+" => Ok(RespValue::Simple(rest.to_owned())),
        "-" => Ok(RespValue::Error(rest.to_owned())),
        ":" => Ok(RespValue::Integer(parse_int(rest)?)),
        "$" => {
            let len = parse_int(rest)?;
            if len < 0 {
                return Ok(RespValue::Nil);
            }
            let len = usize::try_from(len)
                .map_err(|_| TestingError::Protocol(format!("bad bulk length {len}")))?;
            // `take` + `read_to_end` instead of pre-allocating `len` bytes: a
            // peer that is not Redis must not make us allocate gigabytes.
            let want = len
                .checked_add(2)
                .ok_or_else(|| TestingError::Protocol(format!("bad bulk length {len}")))?;
            let mut data = Vec::new();
            reader
                .by_ref()
                .take(want as u64)
                .read_to_end(&mut data)
                .map_err(|e| TestingError::io("reading", e))?;
            if data.len() != want || !data.ends_with(b"\r\n") {
                return Err(TestingError::Protocol("truncated bulk string".into()));
            }
            data.truncate(len);
            Ok(RespValue::Bulk(data))
        }
        "*" => {
            let len = parse_int(rest)?;
            if len < 0 {
                return Ok(RespValue::Nil);
            }
            let mut items = Vec::new();
            for _ in 0..len {
                items.push(read_value(reader, depth + 1)?);
            }
            Ok(RespValue::Array(items))
        }
        _ => Err(TestingError::Protocol(format!(
            "unexpected reply line {line:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<RespValue, TestingError> {
        read_value(&mut BufReader::new(bytes), 0)
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(encode(&["GET", "k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(encode(&["SAVE", ""]), b"*2\r\n$4\r\nSAVE\r\n$0\r\n\r\n");
    }

    #[test]
    fn parses_every_reply_type() -> Result<(), TestingError> {
        assert_eq!(parse(b"+OK\r\n")?, RespValue::Simple("OK".into()));
        assert_eq!(parse(b"-ERR x\r\n")?, RespValue::Error("ERR x".into()));
        assert_eq!(parse(b":-42\r\n")?, RespValue::Integer(-42));
        assert_eq!(
            parse(b"$3\r\na\r\n\r\n")?,
            RespValue::Bulk(b"a\r\n".to_vec())
        );
        assert_eq!(parse(b"$-1\r\n")?, RespValue::Nil);
        assert_eq!(parse(b"*-1\r\n")?, RespValue::Nil);
        assert_eq!(
            parse(b"*2\r\n:1\r\n*1\r\n$0\r\n\r\n")?,
            RespValue::Array(vec![
                RespValue::Integer(1),
                RespValue::Array(vec![RespValue::Bulk(Vec::new())])
            ])
        );
        Ok(())
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            parse(b"hello\r\n"),
            Err(TestingError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"$5\r\nab\r\n"),
            Err(TestingError::Protocol(_))
        ));
        assert!(matches!(parse(b"+OK\n"), Err(TestingError::Protocol(_))));
        assert!(parse(b"").is_err());
    }
}
