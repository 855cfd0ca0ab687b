//! Connections of the Redis cache. On plain TCP with RESP2 (a `redis://host` URL) the
//! connection is our own ([`PlainConn`]): it finds where each reply ends in its read
//! buffer and hands whole replies to the `redis` crate's parser, except the replies of
//! `GET`/`MGET`, whose bulk strings it reads in place ([`Bulks`]): no value tree, no
//! allocation per value. TLS, Unix sockets and RESP3 use the `redis` crate's connection.
//!
//! Both kinds implement [`ConnectionLike`], so every command is built and typed by the
//! `redis` crate either way; an I/O or protocol error marks the connection closed, so the
//! pool drops it.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionLike, ErrorKind, RedisError, RedisResult, Value};

/// Bytes asked of the socket per read (a 100-value `MGET` reply fits in one).
const READ_CHUNK: usize = 64 * 1024;

/// The bulk strings of one `GET` or `MGET` reply: `None` for a missing key, else the
/// range of its bytes in `buf`.
#[derive(Debug, Default)]
pub(crate) struct Bulks {
    pub(crate) buf: Vec<u8>,
    pub(crate) items: Vec<Option<Range<usize>>>,
}

/// A connection to a Redis server.
pub(crate) enum Conn {
    /// Plain TCP, RESP2: ours.
    Plain(PlainConn),
    /// The `redis` crate's (TLS, Unix socket, RESP3).
    Lib(redis::Connection),
}

impl Conn {
    /// Connects (waiting at most `timeout` for the TCP connection), authenticates and
    /// selects the database of `client`'s URL.
    pub(crate) fn open(client: &redis::Client, timeout: Duration) -> RedisResult<Conn> {
        let info = client.get_connection_info();
        let settings = info.redis_settings();
        match info.addr() {
            ConnectionAddr::Tcp(host, port) if !settings.protocol().supports_resp3() => {
                let mut c = PlainConn::connect(host, *port, timeout)?;
                if let Some(password) = settings.password() {
                    let mut auth = redis::cmd("AUTH");
                    if let Some(user) = settings.username() {
                        auth.arg(user);
                    }
                    auth.arg(password).query::<()>(&mut c)?;
                }
                if settings.db() != 0 {
                    redis::cmd("SELECT")
                        .arg(settings.db())
                        .query::<()>(&mut c)?;
                    c.db = settings.db();
                }
                Ok(Conn::Plain(c))
            }
            _ => client.get_connection_with_timeout(timeout).map(Conn::Lib),
        }
    }

    /// Sends `cmd` (packed; a `GET` or `MGET`) and reads its reply's bulk strings.
    pub(crate) fn bulks(&mut self, cmd: &[u8]) -> RedisResult<Bulks> {
        match self {
            Conn::Plain(c) => c.bulks(cmd),
            Conn::Lib(c) => {
                let mut out = Bulks::default();
                let mut push = |v: Value| match v {
                    Value::Nil => {
                        out.items.push(None);
                        Ok(())
                    }
                    Value::BulkString(b) => {
                        let start = out.buf.len();
                        out.buf.extend_from_slice(&b);
                        out.items.push(Some(start..out.buf.len()));
                        Ok(())
                    }
                    other => Err(unexpected(&other)),
                };
                match c.req_packed_command(cmd)?.extract_error()? {
                    Value::Array(items) => items.into_iter().try_for_each(&mut push)?,
                    v => push(v)?,
                }
                Ok(out)
            }
        }
    }
}

fn unexpected(v: &Value) -> RedisError {
    RedisError::from((
        ErrorKind::Parse,
        "unexpected reply to GET/MGET",
        format!("{v:?}"),
    ))
}

fn protocol_error(what: &'static str) -> RedisError {
    RedisError::from((
        ErrorKind::Parse,
        "bad reply from the server",
        what.to_owned(),
    ))
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Lib(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Plain(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Lib(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Plain(c) => c.get_db(),
            Conn::Lib(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Plain(c) => c.open,
            Conn::Lib(c) => c.is_open(),
        }
    }
}

/// Our RESP2 connection over plain TCP: replies are read into one buffer, and
/// `buf[pos..len]` holds what has been read and not yet consumed.
pub(crate) struct PlainConn {
    sock: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// How far the reply at `pos` was found complete (see [`Scan`]).
    scan: Scan,
    open: bool,
    db: i64,
}

impl PlainConn {
    fn connect(host: &str, port: u16, timeout: Duration) -> RedisResult<PlainConn> {
        let mut last = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(sock) => {
                    sock.set_nodelay(true)?;
                    return Ok(PlainConn {
                        sock,
                        buf: vec![0; READ_CHUNK],
                        pos: 0,
                        len: 0,
                        scan: Scan::START,
                        open: true,
                        db: 0,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            .into())
    }

    /// Marks the connection closed when `r` is an error.
    fn watch<T>(&mut self, r: RedisResult<T>) -> RedisResult<T> {
        if r.is_err() {
            self.open = false;
        }
        r
    }

    fn send(&mut self, cmd: &[u8]) -> RedisResult<()> {
        let r = self.sock.write_all(cmd).map_err(RedisError::from);
        self.watch(r)
    }

    /// Reads more bytes from the socket (keeping the unconsumed ones).
    fn fill(&mut self) -> RedisResult<()> {
        if self.pos == self.len {
            (self.pos, self.len) = (0, 0);
        } else if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            (self.pos, self.len) = (0, self.len - self.pos);
        }
        if self.buf.len() - self.len < READ_CHUNK / 2 {
            let grown = (self.buf.len() * 2).max(self.len + READ_CHUNK);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.sock.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "server closed");
                    return self.watch(Err(eof.into()));
                }
                Ok(n) => {
                    self.len += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.watch(Err(e.into())),
            }
        }
    }

    /// The range of the next whole reply in `buf` (reading until it is complete); the
    /// reply counts as consumed.
    fn next_reply(&mut self) -> RedisResult<Range<usize>> {
        loop {
            match frame(&self.buf[self.pos..self.len], &mut self.scan) {
                Ok(Some(n)) => {
                    let r = self.pos..self.pos + n;
                    self.pos += n;
                    self.scan = Scan::START;
                    return Ok(r);
                }
                Ok(None) => self.fill()?,
                Err(what) => return self.watch(Err(protocol_error(what))),
            }
        }
    }

    /// The next reply as a value of the `redis` crate (a server error is an
    /// `Ok(Value::ServerError)`, as the crate's connection returns it).
    fn next_value(&mut self) -> RedisResult<Value> {
        let r = self.next_reply()?;
        let v = redis::parse_redis_value(&self.buf[r]);
        self.watch(v)
    }

    fn bulks(&mut self, cmd: &[u8]) -> RedisResult<Bulks> {
        self.send(cmd)?;
        let r = self.next_reply()?;
        let reply = &self.buf[r];
        if reply[0] == b'-' {
            // A server error: the connection stays in step.
            return redis::parse_redis_value(reply)
                .and_then(Value::extract_error)
                .map(|_| Bulks::default());
        }
        let res = if reply[0] == b'$' || reply[0] == b'*' {
            let mut items = Vec::new();
            bulk_items(reply, &mut items)
                .ok_or_else(|| protocol_error("GET/MGET reply not of bulk strings"))
                .map(|()| Bulks {
                    buf: reply.to_vec(),
                    items,
                })
        } else {
            redis::parse_redis_value(reply).and_then(|v| Err(unexpected(&v)))
        };
        self.watch(res)
    }
}

impl ConnectionLike for PlainConn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send(cmd)?;
        self.next_value()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.send(cmd)?;
        let mut out = Vec::with_capacity(count);
        let mut first_err = None;
        // Every reply is read, even after an error, so that the next command's reply is
        // its own.
        for i in 0..offset + count {
            match self.next_value()? {
                Value::ServerError(e) if i < offset => {
                    first_err.get_or_insert(RedisError::from(e));
                }
                v if i >= offset => out.push(v),
                _ => {}
            }
        }
        first_err.map_or(Ok(out), Err)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}

/// The decimal integer of a RESP header line.
fn int_of(line: &[u8]) -> Result<i64, &'static str> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("bad length")
}

/// Where the scan of a reply stopped for want of bytes: the offset of the first element
/// not yet complete and how many elements (it included) remain, so that a reply arriving
/// in many reads is scanned once, not again from its start after each read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scan {
    at: usize,
    pending: u64,
}

impl Scan {
    const START: Scan = Scan { at: 0, pending: 1 };
}

/// The length of the first whole RESP2 reply at the start of `b`: `None` while
/// incomplete (then `scan` says where to go on from once more bytes are read).
fn frame(b: &[u8], scan: &mut Scan) -> Result<Option<usize>, &'static str> {
    let Scan {
        at: mut pos,
        mut pending,
    } = *scan;
    while pending > 0 {
        *scan = Scan { at: pos, pending };
        let Some(nl) = b
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        else {
            return Ok(None);
        };
        let end = pos + nl; // the '\n'
        if end < pos + 2 || b[end - 1] != b'\r' {
            return Err("line not ended by CRLF");
        }
        let (kind, line) = (b[pos], &b[pos + 1..end - 1]);
        pos = end + 1;
        pending -= 1;
        match kind {
            b'+' | b'-' | b':' => {}
            b'$' => {
                let n = int_of(line)?;
                if n >= 0 {
                    pos += usize::try_from(n).map_err(|_| "bad length")? + 2;
                    if pos > b.len() {
                        return Ok(None);
                    }
                    if &b[pos - 2..pos] != b"\r\n" {
                        return Err("bulk string not ended by CRLF");
                    }
                }
            }
            b'*' => {
                let n = int_of(line)?;
                if n > 0 {
                    pending += u64::try_from(n).map_err(|_| "bad length")?;
                }
            }
            _ => return Err("unknown reply type"),
        }
    }
    Ok(Some(pos))
}

/// The bulk strings of a whole reply `r` (one bulk string, or an array of them) as
/// ranges of `r`; `None` when it holds anything else.
fn bulk_items(r: &[u8], out: &mut Vec<Option<Range<usize>>>) -> Option<()> {
    let line = |pos: usize| -> Option<(i64, usize)> {
        let nl = pos + r.get(pos..)?.iter().position(|&c| c == b'\n')?;
        Some((int_of(r.get(pos + 1..nl - 1)?).ok()?, nl + 1))
    };
    let mut pos = 0;
    let count = if r[0] == b'*' {
        let (n, next) = line(0)?;
        pos = next;
        usize::try_from(n).ok()?
    } else {
        1
    };
    out.reserve(count);
    for _ in 0..count {
        if r.get(pos) != Some(&b'$') {
            return None;
        }
        let (n, next) = line(pos)?;
        if n < 0 {
            out.push(None);
            pos = next;
        } else {
            let end = next + usize::try_from(n).ok()?;
            out.push(Some(next..end));
            pos = end + 2;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_framed_whole() {
        let whole: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR no\r\n",
            b":42\r\n",
            b"$3\r\nabc\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n",
            b"$4\r\na\r\nb\r\n",
        ];
        let whole_at_once = |b: &[u8]| {
            let mut scan = Scan::START;
            frame(b, &mut scan)
        };
        for r in whole {
            assert_eq!(whole_at_once(r), Ok(Some(r.len())), "{r:?}");
            for cut in 0..r.len() {
                assert_eq!(whole_at_once(&r[..cut]), Ok(None), "{r:?} cut at {cut}");
            }
            // Arriving a byte at a time, the scan goes on from where it stopped.
            let mut scan = Scan::START;
            for cut in 0..r.len() {
                assert_eq!(frame(&r[..cut], &mut scan), Ok(None), "{r:?} cut at {cut}");
            }
            assert_eq!(frame(r, &mut scan), Ok(Some(r.len())), "{r:?}");
            let mut two = r.to_vec();
            two.extend_from_slice(b"+OK\r\n");
            assert_eq!(whole_at_once(&two), Ok(Some(r.len())));
        }
        assert!(whole_at_once(b"?x\r\n").is_err());
        assert!(whole_at_once(b"$3\r\nabcd\r\n").is_err());
        assert!(whole_at_once(b"$x\r\n").is_err());
    }

    #[test]
    fn bulk_replies_are_read_in_place() {
        let r = b"*3\r\n$2\r\nab\r\n$-1\r\n$0\r\n\r\n";
        let mut items = Vec::new();
        bulk_items(r, &mut items).unwrap();
        assert_eq!(items, vec![Some(8..10), None, Some(21..21)]);
        let mut one = Vec::new();
        bulk_items(b"$3\r\nxyz\r\n", &mut one).unwrap();
        assert_eq!(one, vec![Some(4..7)]);
        assert!(bulk_items(b"*1\r\n:1\r\n", &mut Vec::new()).is_none());
    }
}
