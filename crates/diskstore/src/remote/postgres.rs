//! The store on PostgreSQL: [`PgConn`] (pooled connections and per-thread transactions),
//! [`PgTable`] (the type-erased table, the counterpart of [`Table`](crate::Table)) and
//! [`PgStore`] (the typed store, with the method names of [`DiskStore`](crate::DiskStore)).
//!
//! A table has an identity column `_id` (insertion order; an overwrite keeps it), the key
//! column `_key` (primary key) and one typed column per record field: `i64` → `bigint`,
//! `f64` → `double precision`, text → `text`, bytes → `bytea`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row as PgRow, Statement};

pub(crate) use super::pool::Retry;
use super::pool::{self, Pool, Pooled};
use super::postgres_sql::{
    Param, Placeholder, is_disconnect, map_error, pg_column_type, pg_type, serving_type, translate,
};
use super::redact_url;
use crate::error::{Error, Result};
use crate::key::{AsKey, Key, KeyRef};
use crate::record::{Record, Row, RowSource};
use crate::schema::{TableSpec, quote_ident};
use crate::value::{Cell, ColumnType, Value, ValueRef};

/// How many idle connections a pool keeps.
const MAX_IDLE: usize = 16;
/// How long connecting may take unless the URL says otherwise (`connect_timeout=`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many prepared statements one connection keeps.
const MAX_PREPARED: usize = 256;

/// A connection with its prepared statements: each SQL text is parsed once per
/// connection, so that a call is one round trip (Bind/Execute), not two.
pub(crate) struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

type PgResult<T> = std::result::Result<T, postgres::Error>;

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: HashMap::new(),
        }
    }

    fn statement(&mut self, sql: &str) -> PgResult<Statement> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        if self.prepared.len() >= MAX_PREPARED {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(crate) fn query(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> PgResult<Vec<PgRow>> {
        let s = self.statement(sql)?;
        self.client.query(&s, p)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> PgResult<Option<PgRow>> {
        let s = self.statement(sql)?;
        self.client.query_opt(&s, p)
    }

    pub(crate) fn query_one(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> PgResult<PgRow> {
        let s = self.statement(sql)?;
        self.client.query_one(&s, p)
    }

    pub(crate) fn execute(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> PgResult<u64> {
        let s = self.statement(sql)?;
        self.client.execute(&s, p)
    }

    pub(crate) fn batch_execute(&mut self, sql: &str) -> PgResult<()> {
        self.client.batch_execute(sql)
    }

    pub(crate) fn transaction(&mut self) -> PgResult<postgres::Transaction<'_>> {
        self.client.transaction()
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn is_valid(&mut self, timeout: Duration) -> PgResult<()> {
        self.client.is_valid(timeout)
    }
}

/// One thread's open transaction: its connection, nesting depth, and whether the
/// connection broke inside it.
struct Pinned {
    client: Option<Conn>,
    depth: u32,
    broken: Option<String>,
}

/// Connections to one PostgreSQL database: a pool for autocommitted calls and, per
/// thread, the connection of its open transaction.
pub struct PgConn {
    config: postgres::Config,
    /// The URL's `sslmode` (`prefer` and `allow` try the other way when the first fails).
    mode: super::tls::SslMode,
    /// The TLS connector (`None`: `sslmode=disable`).
    #[cfg(feature = "tls")]
    connector: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    url: String,
    pool: Pool<Conn>,
    pinned: Mutex<HashMap<ThreadId, Pinned>>,
}

impl PgConn {
    /// Parses the URL (nothing is connected yet).
    ///
    /// # Errors
    /// [`Error::Usage`] for a URL that cannot be parsed.
    pub fn new(url: &str) -> Result<PgConn> {
        let tls = super::tls::postgres_url(url)?;
        let mut config = postgres::Config::from_str(&tls.url)
            .map_err(|e| Error::Usage(format!("bad PostgreSQL URL {}: {e}", redact_url(url))))?;
        config.ssl_mode(match tls.mode {
            // `allow` tries plain text first.
            super::tls::SslMode::Disable | super::tls::SslMode::Allow => {
                postgres::config::SslMode::Disable
            }
            super::tls::SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        #[cfg(feature = "tls")]
        let connector = super::tls::postgres_connector(&tls)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("diskstore");
        }
        Ok(PgConn {
            config,
            mode: tls.mode,
            #[cfg(feature = "tls")]
            connector,
            url: redact_url(url),
            pool: Pool::new(MAX_IDLE),
            pinned: Mutex::new(HashMap::new()),
        })
    }

    /// Makes every session read-only on the server (`default_transaction_read_only`):
    /// a write through this connection set fails there, whatever the caller does.
    pub(crate) fn read_only(mut self) -> PgConn {
        let options = match self.config.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c default_transaction_read_only=on"),
            _ => "-c default_transaction_read_only=on".to_owned(),
        };
        self.config.options(&options);
        self
    }

    /// A new set of sessions to the same server with the same settings (none connected
    /// yet), read-only on the server.
    pub(crate) fn read_only_copy(&self) -> PgConn {
        PgConn {
            config: self.config.clone(),
            mode: self.mode,
            #[cfg(feature = "tls")]
            connector: self.connector.clone(),
            url: self.url.clone(),
            pool: Pool::new(MAX_IDLE),
            pinned: Mutex::new(HashMap::new()),
        }
        .read_only()
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, e: &postgres::Error) -> Error {
        map_error(&self.url, e)
    }

    /// One connection. Under `sslmode=prefer` a failed TLS attempt is followed by one in
    /// plain text, under `allow` a refused plain-text one by one over TLS, as libpq does
    /// (not after a refused TCP connection or a timeout, which the other way would meet
    /// again).
    fn connect(&self) -> Result<Conn> {
        let first = self.connect_with(&self.config, self.mode != super::tls::SslMode::Allow);
        let e = match first {
            Ok(client) => return Ok(Conn::new(client)),
            Err(e) => e,
        };
        let other_way = match self.mode {
            super::tls::SslMode::Prefer => postgres::config::SslMode::Disable,
            super::tls::SslMode::Allow if cfg!(feature = "tls") => {
                postgres::config::SslMode::Require
            }
            _ => return Err(self.err(&e)),
        };
        if !worth_the_other_way(&e) {
            return Err(self.err(&e));
        }
        let mut config = self.config.clone();
        config.ssl_mode(other_way);
        let tls = other_way == postgres::config::SslMode::Require;
        self.connect_with(&config, tls)
            .map(Conn::new)
            .map_err(|second| {
                let mut err = self.err(&second);
                if let Error::Connection { message, .. } = &mut err {
                    let (now, before) = if tls {
                        ("over TLS", "in plain text")
                    } else {
                        ("in plain text", "over TLS")
                    };
                    message.push_str(&format!(
                        " (tried {now} after {before} failed: {})",
                        self.err(&e)
                    ));
                }
                err
            })
    }

    /// Connects with `config`; `tls`: with the URL's TLS connector where there is one.
    fn connect_with(
        &self,
        config: &postgres::Config,
        tls: bool,
    ) -> std::result::Result<Client, postgres::Error> {
        #[cfg(feature = "tls")]
        if let (true, Some(connector)) = (tls, &self.connector) {
            return config.connect(connector.clone());
        }
        let _ = tls;
        config.connect(NoTls)
    }

    fn pins(&self) -> std::sync::MutexGuard<'_, HashMap<ThreadId, Pinned>> {
        self.pinned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on this thread's transaction connection, or else on a pooled one. A
    /// broken pooled connection empties the pool; a [`Retry::Safe`] call is then repeated
    /// once on a new connection.
    pub(crate) fn run<R>(
        &self,
        retry: Retry,
        mut f: impl FnMut(&mut Conn) -> std::result::Result<R, postgres::Error>,
    ) -> Result<R> {
        let me = std::thread::current().id();
        let pinned = self
            .pins()
            .get_mut(&me)
            .map(|p| (p.client.take(), p.broken.clone()));
        if let Some((client, broken)) = pinned {
            if let Some(message) = broken {
                return Err(self.lost(&message));
            }
            let Some(mut client) = client else {
                return Err(Error::Usage(
                    "the transaction's connection is in use (re-entrant call)".into(),
                ));
            };
            let out = f(&mut client);
            let mut pins = self.pins();
            let pin = pins.get_mut(&me).expect("pinned by this thread");
            return match out {
                Ok(r) => {
                    pin.client = Some(client);
                    Ok(r)
                }
                Err(e) if is_disconnect(&e) || client.is_closed() => {
                    let err = self.err(&e);
                    pin.broken = Some(err.to_string());
                    drop(pins);
                    self.pool.drain();
                    Err(self.lost(&err.to_string()))
                }
                Err(e) => {
                    // PostgreSQL aborts the transaction on any error; a savepoint level
                    // rolls back to its savepoint when its block ends with this error.
                    pin.client = Some(client);
                    Err(self.err(&e))
                }
            };
        }
        pool::run(self, retry, f)
    }

    fn lost(&self, message: &str) -> Error {
        Error::Connection {
            url: self.url.clone(),
            message: format!(
                "the connection was lost inside a transaction ({message}); nothing of the \
                 transaction was committed"
            ),
        }
    }

    /// Begins a transaction on this thread (or a savepoint inside the open one). Every
    /// call of this connection set on this thread runs in it until the matching
    /// [`PgConn::end`]. Returns the depth it opened (1 = outermost).
    ///
    /// # Errors
    /// [`Error::Connection`] when the server cannot be reached.
    pub fn begin(&self) -> Result<u32> {
        let me = std::thread::current().id();
        let depth = self.pins().get(&me).map(|p| p.depth);
        match depth {
            None => {
                let mut client = match self.pool.take() {
                    Some((c, _)) if !c.is_closed() => c,
                    _ => self.connect()?,
                };
                if let Err(e) = client.batch_execute("BEGIN") {
                    if !is_disconnect(&e) {
                        return Err(self.err(&e));
                    }
                    self.pool.drain();
                    client = self.connect()?;
                    client.batch_execute("BEGIN").map_err(|e| self.err(&e))?;
                }
                self.pins().insert(
                    me,
                    Pinned {
                        client: Some(client),
                        depth: 1,
                        broken: None,
                    },
                );
                Ok(1)
            }
            Some(d) => {
                self.run(Retry::Never, |c| {
                    c.batch_execute(&format!("SAVEPOINT ds_{d}"))
                })?;
                self.pins().get_mut(&me).expect("pinned").depth = d + 1;
                Ok(d + 1)
            }
        }
    }

    /// Ends the innermost transaction level of this thread: commits (or releases the
    /// savepoint) when `commit`, else rolls it back.
    ///
    /// # Errors
    /// [`Error::Connection`] when the connection broke inside the transaction (nothing was
    /// committed) or during `COMMIT` (the message says the outcome is unknown);
    /// [`Error::Usage`] without an open transaction.
    pub fn end(&self, commit: bool) -> Result<()> {
        let me = std::thread::current().id();
        let mut pins = self.pins();
        let Some(pin) = pins.get_mut(&me) else {
            return Err(Error::Usage("no transaction is open on this thread".into()));
        };
        pin.depth -= 1;
        let depth = pin.depth;
        if depth == 0 {
            let pin = pins.remove(&me).expect("pinned");
            drop(pins);
            if let Some(message) = pin.broken {
                return Err(self.lost(&message));
            }
            let mut client = pin.client.expect("connection of the transaction");
            let sql = if commit { "COMMIT" } else { "ROLLBACK" };
            return match client.batch_execute(sql) {
                Ok(()) => {
                    self.pool.give(client);
                    Ok(())
                }
                Err(e) if commit && is_disconnect(&e) => {
                    self.pool.drain();
                    Err(Error::Connection {
                        url: self.url.clone(),
                        message: format!(
                            "the connection was lost during COMMIT ({}); the transaction may \
                             or may not have been committed",
                            self.err(&e)
                        ),
                    })
                }
                Err(e) => Err(self.err(&e)),
            };
        }
        if let Some(message) = pin.broken.clone() {
            return Err(self.lost(&message));
        }
        drop(pins);
        let sql = if commit {
            format!("RELEASE SAVEPOINT ds_{depth}")
        } else {
            format!("ROLLBACK TO SAVEPOINT ds_{depth}; RELEASE SAVEPOINT ds_{depth}")
        };
        match self.run(Retry::Never, |c| c.batch_execute(&sql)) {
            Err(e @ Error::Server { .. }) if commit => {
                // A failed statement aborted the transaction: this level cannot commit.
                Err(e)
            }
            other => other,
        }
    }

    /// The nesting depth of this thread's transaction (0: none).
    pub fn depth(&self) -> u32 {
        self.pins()
            .get(&std::thread::current().id())
            .map_or(0, |p| p.depth)
    }

    /// Closes the idle connections (open transactions keep theirs).
    pub fn close_idle(&self) {
        self.pool.drain();
    }
}

/// Whether a failed connection attempt may succeed the other way (TLS or plain text):
/// yes after a refusal by the server or a failed handshake; no when the server could not
/// be reached at all.
fn worth_the_other_way(e: &postgres::Error) -> bool {
    use std::error::Error as _;
    use std::io::ErrorKind;
    if e.as_db_error().is_some() {
        return true;
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::TimedOut
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::NotFound
            )
        {
            return false;
        }
        source = s.source();
    }
    true
}

/// Parameters bound to a statement.
fn params<'a>(v: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    v.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn cell_ref<'a>(c: &'a Cell<'_>) -> ValueRef<'a> {
    match c {
        Cell::Borrowed(v) => *v,
        Cell::Owned(v) => v.as_ref(),
    }
}

impl Pooled for PgConn {
    type Conn = Conn;
    type Err = postgres::Error;
    fn pool(&self) -> &Pool<Conn> {
        &self.pool
    }
    fn connect(&self) -> Result<Conn> {
        PgConn::connect(self)
    }
    fn is_open(conn: &Conn) -> bool {
        !conn.is_closed()
    }
    fn answers(conn: &mut Conn) -> bool {
        conn.is_valid(CONNECT_TIMEOUT).is_ok()
    }
    fn is_disconnect(e: &postgres::Error) -> bool {
        is_disconnect(e)
    }
    fn error(&self, e: &postgres::Error) -> Error {
        self.err(e)
    }
}

/// The SQL of one table.
struct Sql {
    get: String,
    get_many: String,
    contains: String,
    count: String,
    upsert: String,
    upsert_many: String,
    insert_new: String,
    get_or_insert: String,
    delete: String,
    delete_many: String,
    remove: String,
    pop_last: String,
    pop_first: String,
    clear: String,
    page_forward: String,
    page_backward: String,
    select: String,
}

/// A store table on PostgreSQL, type-erased: keys are [`KeyRef`]s, values rows of
/// [`Value`]s in the order of the spec's columns.
pub struct PgTable {
    conn: PgConn,
    spec: TableSpec,
    table: String,
    sql: Sql,
}

impl PgTable {
    /// Connects, creates the table if missing and adds missing columns (with their
    /// defaults) — in one transaction under an advisory lock, so that processes opening
    /// the same table at once do not race.
    ///
    /// # Errors
    /// [`Error::Connection`] when the server cannot be reached or refuses the
    /// credentials; [`Error::Schema`] when an existing column has another type.
    pub fn open(url: &str, spec: TableSpec) -> Result<PgTable> {
        Self::open_as(url, spec, false)
    }

    /// Opens an existing table read-only: nothing is created or migrated, and the
    /// server refuses writes on its sessions (`default_transaction_read_only`), as
    /// SQLite's read-only open does for a file.
    ///
    /// # Errors
    /// As [`PgTable::open`]; [`Error::Schema`] when the table or one of the record's
    /// columns is missing.
    pub fn open_read_only(url: &str, spec: TableSpec) -> Result<PgTable> {
        Self::open_as(url, spec, true)
    }

    /// A read-only handle on the same table, on new read-only sessions (as
    /// [`PgTable::open_read_only`] with this table's URL and description).
    ///
    /// # Errors
    /// As [`PgTable::open_read_only`].
    pub fn read_only(&self) -> Result<PgTable> {
        Self::open_read_only_on(self.conn.read_only_copy(), self.spec.clone())
    }

    /// [`PgTable::open`] or, `read_only`, [`PgTable::open_read_only`].
    fn open_as(url: &str, spec: TableSpec, read_only: bool) -> Result<PgTable> {
        if read_only {
            return Self::open_read_only_on(PgConn::new(url)?.read_only(), spec);
        }
        let table = quote_ident(&spec.name)?;
        let conn = PgConn::new(url)?;
        let types = Self::migrate(&conn, &spec, &table)?;
        Self::assemble(conn, spec, table, &types)
    }

    /// Opens an existing table read-only on `conn` (read-only sessions).
    fn open_read_only_on(conn: PgConn, spec: TableSpec) -> Result<PgTable> {
        let table = quote_ident(&spec.name)?;
        let types = Self::existing_types(&conn, &spec)?;
        Self::assemble(conn, spec, table, &types)
    }

    /// The handle of `table` on `conn`, its statements made for the value columns' `types`.
    fn assemble(
        conn: PgConn,
        spec: TableSpec,
        table: String,
        types: &[&'static str],
    ) -> Result<PgTable> {
        let sql = Self::statements(&spec, &table, types)?;
        Ok(PgTable {
            conn,
            spec,
            table,
            sql,
        })
    }

    /// The server's type of each value column of an existing table (no changes made).
    fn existing_types(conn: &PgConn, spec: &TableSpec) -> Result<Vec<&'static str>> {
        let name = &spec.name;
        let rows = conn.run(Retry::Safe, |c| {
            c.query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[name],
            )
        })?;
        let schema = |column: Option<&str>, message: String| Error::Schema {
            table: name.clone(),
            column: column.map(str::to_owned),
            message,
        };
        if rows.is_empty() {
            return Err(schema(None, "the database has no such table".into()));
        }
        let existing: HashMap<String, String> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        spec.columns
            .iter()
            .map(|col| {
                let want = pg_column_type(col);
                let Some(have) = existing.get(&col.name) else {
                    return Err(schema(
                        Some(&col.name),
                        "the column is missing and a read-only store cannot add it".into(),
                    ));
                };
                serving_type(have, want).ok_or_else(|| {
                    schema(
                        Some(&col.name),
                        format!("the column is {have}, the record needs {want}"),
                    )
                })
            })
            .collect()
    }

    /// The connections (for transactions).
    pub fn conn(&self) -> &PgConn {
        &self.conn
    }

    /// The table's description.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Begins a write transaction on this thread, or a savepoint inside the open one.
    /// The outermost level takes a transaction-scoped advisory lock on the table, so that
    /// write transactions on one table run one at a time, as SQLite's `BEGIN IMMEDIATE`
    /// makes them (a read-modify-write in a transaction never loses an update);
    /// autocommitted calls are not held back by it. Returns the depth opened.
    ///
    /// # Errors
    /// [`Error::Connection`] when the server cannot be reached.
    pub fn begin_write(&self) -> Result<u32> {
        let depth = self.conn.begin()?;
        if depth == 1 {
            let name = format!("diskstore:{}", self.spec.name);
            let locked = self.conn.run(Retry::Never, |c| {
                c.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&name])
            });
            if let Err(e) = locked {
                let _ = self.conn.end(false);
                return Err(e);
            }
        }
        Ok(depth)
    }

    /// The statements of the table; `types`: the server's type of each value column.
    fn statements(spec: &TableSpec, t: &str, types: &[&str]) -> Result<Sql> {
        let cols: Vec<String> = spec
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Result<_>>()?;
        let n = cols.len();
        let list = if n == 0 {
            "NULL".to_owned()
        } else {
            cols.join(", ")
        };
        let ins_cols: String = std::iter::once("\"_key\"".to_owned())
            .chain(cols.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");
        let ins_vals: String = (1..=n + 1)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let update = if n == 0 {
            "\"_key\" = EXCLUDED.\"_key\"".to_owned()
        } else {
            cols.iter()
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let key_t = pg_type(spec.key_type);
        let arr_types: Vec<String> = std::iter::once(format!("${{}}::{key_t}[]"))
            .chain(types.iter().map(|ty| format!("${{}}::{ty}[]")))
            .collect();
        let unnest_args: Vec<String> = arr_types
            .iter()
            .enumerate()
            .map(|(i, a)| a.replace("{}", &(i + 1).to_string()))
            .collect();
        let u_names: Vec<String> = (0..=n).map(|i| format!("c{i}")).collect();
        Ok(Sql {
            get: format!("SELECT {list} FROM {t} WHERE \"_key\" = $1"),
            get_many: format!(
                "SELECT \"_key\", {list} FROM {t} WHERE \"_key\" = ANY($1::{key_t}[])"
            ),
            contains: format!("SELECT 1 FROM {t} WHERE \"_key\" = $1"),
            count: format!("SELECT count(*) FROM {t}"),
            upsert: format!(
                "INSERT INTO {t} ({ins_cols}) VALUES ({ins_vals}) ON CONFLICT (\"_key\") DO UPDATE SET {update}"
            ),
            upsert_many: format!(
                "INSERT INTO {t} ({ins_cols}) SELECT {} FROM unnest({}) WITH ORDINALITY AS u({}, n) ORDER BY n \
                 ON CONFLICT (\"_key\") DO UPDATE SET {update}",
                u_names.join(", "),
                unnest_args.join(", "),
                u_names.join(", ")
            ),
            insert_new: format!(
                "INSERT INTO {t} ({ins_cols}) VALUES ({ins_vals}) ON CONFLICT (\"_key\") DO NOTHING"
            ),
            get_or_insert: format!(
                "WITH ins AS (INSERT INTO {t} ({ins_cols}) VALUES ({ins_vals}) ON CONFLICT (\"_key\") DO NOTHING RETURNING {list}) \
                 SELECT {list} FROM ins UNION ALL SELECT {list} FROM {t} WHERE \"_key\" = $1 LIMIT 1"
            ),
            delete: format!("DELETE FROM {t} WHERE \"_key\" = $1"),
            delete_many: format!("DELETE FROM {t} WHERE \"_key\" = ANY($1::{key_t}[])"),
            remove: format!("DELETE FROM {t} WHERE \"_key\" = $1 RETURNING {list}"),
            pop_last: format!(
                "DELETE FROM {t} WHERE \"_id\" = (SELECT \"_id\" FROM {t} ORDER BY \"_id\" DESC LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING \"_key\", {list}"
            ),
            pop_first: format!(
                "DELETE FROM {t} WHERE \"_id\" = (SELECT \"_id\" FROM {t} ORDER BY \"_id\" LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING \"_key\", {list}"
            ),
            clear: format!("DELETE FROM {t}"),
            page_forward: format!(
                "SELECT \"_id\", \"_key\", {list} FROM {t} WHERE \"_id\" > $1 ORDER BY \"_id\" LIMIT $2"
            ),
            page_backward: format!(
                "SELECT \"_id\", \"_key\", {list} FROM {t} WHERE \"_id\" < $1 ORDER BY \"_id\" DESC LIMIT $2"
            ),
            select: format!("SELECT \"_key\", {list} FROM {t}"),
        })
    }

    /// Creates the table or adds its missing columns; returns the server's type of each
    /// value column (an older table keeps `bigint`/`text` for bool/JSON fields).
    fn migrate(conn: &PgConn, spec: &TableSpec, t: &str) -> Result<Vec<&'static str>> {
        let key_t = pg_type(spec.key_type);
        let mut defs = vec![
            "\"_id\" bigint GENERATED BY DEFAULT AS IDENTITY UNIQUE".to_owned(),
            format!("\"_key\" {key_t} PRIMARY KEY"),
        ];
        for c in &spec.columns {
            defs.push(format!(
                "{} {}{}",
                quote_ident(&c.name)?,
                pg_column_type(c),
                if c.nullable { "" } else { " NOT NULL" }
            ));
        }
        let create = format!("CREATE TABLE IF NOT EXISTS {t} ({})", defs.join(", "));
        let name = &spec.name;
        let columns = &spec.columns;
        let mut schema_error = None;
        let mut types: Vec<&'static str> = Vec::new();
        conn.run(Retry::Safe, |c| {
            types.clear();
            schema_error = None;
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[name])?;
            tx.batch_execute(&create)?;
            let existing: HashMap<String, String> = tx
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1",
                    &[name],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            for col in columns {
                let want = pg_column_type(col);
                match existing.get(&col.name) {
                    Some(have) => match serving_type(have, want) {
                        Some(ty) => types.push(ty),
                        None => {
                            schema_error = Some(Error::Schema {
                                table: name.clone(),
                                column: Some(col.name.clone()),
                                message: format!("the column is {have}, the record needs {want}"),
                            });
                        }
                    },
                    None => {
                        types.push(want);
                        let default = match &col.default {
                            Some(v) => format!(" DEFAULT {}", typed_literal(v, want)),
                            None if col.nullable => String::new(),
                            None => {
                                schema_error = Some(Error::Schema {
                                    table: name.clone(),
                                    column: Some(col.name.clone()),
                                    message: "a new NOT NULL column needs a default".into(),
                                });
                                continue;
                            }
                        };
                        let q = quote_ident(&col.name).unwrap_or_default();
                        let not_null = if col.nullable { "" } else { " NOT NULL" };
                        tx.batch_execute(&format!(
                            "ALTER TABLE {t} ADD COLUMN {q} {want}{default}{not_null}"
                        ))?;
                    }
                }
            }
            if schema_error.is_none() {
                tx.commit()?;
            }
            Ok(())
        })?;
        schema_error.map_or(Ok(types), Err)
    }

    fn key_param(key: KeyRef<'_>) -> Result<Param<'_>> {
        Ok(Param(key.checked()?))
    }

    fn row_params<'a>(key: KeyRef<'a>, values: &'a [Cell<'a>]) -> Result<Vec<Param<'a>>> {
        let mut p = Vec::with_capacity(values.len() + 1);
        p.push(Self::key_param(key)?);
        p.extend(values.iter().map(|c| Param(cell_ref(c))));
        Ok(p)
    }

    fn check_arity(&self, values: &[Cell<'_>]) -> Result<()> {
        if values.len() != self.spec.columns.len() {
            return Err(Error::Usage(format!(
                "{} values for {} columns",
                values.len(),
                self.spec.columns.len()
            )));
        }
        Ok(())
    }

    /// The value columns stored under `key`.
    ///
    /// # Errors
    /// [`Error::Connection`], [`Error::Server`], [`Error::Decode`].
    pub fn get(&self, key: KeyRef<'_>) -> Result<Option<Vec<Value>>> {
        let k = [Self::key_param(key)?];
        let row = self
            .conn
            .run(Retry::Safe, |c| c.query_opt(&self.sql.get, &params(&k)))?;
        row.map(|r| super::postgres_sql::values(&r, 0)).transpose()
    }

    /// The values of many keys, in one round trip; `None` where a key is missing.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn get_many(&self, keys: &[KeyRef<'_>]) -> Result<Vec<Option<Vec<Value>>>> {
        let ks: Vec<Param<'_>> = keys
            .iter()
            .map(|k| Self::key_param(*k))
            .collect::<Result<_>>()?;
        let rows = self
            .conn
            .run(Retry::Safe, |c| c.query(&self.sql.get_many, &[&ks]))?;
        let mut found: Vec<(Value, Vec<Value>)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut v = super::postgres_sql::values(r, 0)?;
            let k = v.remove(0);
            found.push((k, v));
        }
        Ok(keys
            .iter()
            .map(|k| {
                let want = k.checked().ok().map(|v| v.to_owned());
                found
                    .iter()
                    .find(|(fk, _)| Some(fk) == want.as_ref() || same_key(fk, *k))
                    .map(|(_, v)| v.clone())
            })
            .collect())
    }

    /// True when `key` is stored.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn contains(&self, key: KeyRef<'_>) -> Result<bool> {
        let k = [Self::key_param(key)?];
        Ok(self
            .conn
            .run(Retry::Safe, |c| {
                c.query_opt(&self.sql.contains, &params(&k))
            })?
            .is_some())
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn len(&self) -> Result<u64> {
        let r = self
            .conn
            .run(Retry::Safe, |c| c.query_one(&self.sql.count, &[]))?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    /// True when the table has no entries.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Stores `values` under `key`; an existing key keeps its position.
    ///
    /// # Errors
    /// As [`PgTable::get`], and [`Error::InvalidValue`] for a value the column refuses.
    pub fn set(&self, key: KeyRef<'_>, values: &[Cell<'_>]) -> Result<()> {
        self.check_arity(values)?;
        let p = Self::row_params(key, values)?;
        self.conn
            .run(Retry::Safe, |c| c.execute(&self.sql.upsert, &params(&p)))?;
        Ok(())
    }

    /// Stores many entries in one statement (one round trip). A key given twice keeps
    /// the position of its first occurrence and the value of its last.
    ///
    /// # Errors
    /// As [`PgTable::set`].
    pub fn set_many(&self, items: &[(KeyRef<'_>, Vec<Cell<'_>>)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut order: Vec<usize> = Vec::with_capacity(items.len());
        for (i, (k, v)) in items.iter().enumerate() {
            self.check_arity(v)?;
            k.checked()?;
            match order.iter().position(|&j| same_key_ref(items[j].0, *k)) {
                Some(pos) => order[pos] = i,
                None => order.push(i),
            }
        }
        // Reorder so that each kept entry sits at its first occurrence.
        let mut columns: Vec<Vec<Param<'_>>> = vec![Vec::new(); self.spec.columns.len() + 1];
        let mut firsts: Vec<usize> = Vec::with_capacity(order.len());
        for (i, (k, _)) in items.iter().enumerate() {
            if !firsts.iter().any(|&j| same_key_ref(items[j].0, *k)) {
                firsts.push(i);
            }
        }
        for (slot, &first) in firsts.iter().enumerate() {
            let last = order[slot];
            columns[0].push(Param(items[first].0.checked()?));
            for (c, cell) in items[last].1.iter().enumerate() {
                columns[c + 1].push(Param(cell_ref(cell)));
            }
        }
        let arrays: Vec<&(dyn ToSql + Sync)> =
            columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        self.conn
            .run(Retry::Safe, |c| c.execute(&self.sql.upsert_many, &arrays))?;
        Ok(())
    }

    /// Stores `values` under `key` only if the key is new; true if it was stored.
    ///
    /// # Errors
    /// As [`PgTable::set`].
    pub fn insert_new(&self, key: KeyRef<'_>, values: &[Cell<'_>]) -> Result<bool> {
        self.check_arity(values)?;
        let p = Self::row_params(key, values)?;
        let n = self.conn.run(Retry::Never, |c| {
            c.execute(&self.sql.insert_new, &params(&p))
        })?;
        Ok(n == 1)
    }

    /// The stored value of `key`, after storing `default` if the key was new (atomic).
    ///
    /// # Errors
    /// As [`PgTable::set`].
    pub fn get_or_insert(&self, key: KeyRef<'_>, default: &[Cell<'_>]) -> Result<Vec<Value>> {
        self.check_arity(default)?;
        let p = Self::row_params(key, default)?;
        // A concurrent insert committed after this statement's snapshot is neither
        // inserted over nor visible to it: ask again.
        for _ in 0..100 {
            let row = self.conn.run(Retry::Safe, |c| {
                c.query_opt(&self.sql.get_or_insert, &params(&p))
            })?;
            if let Some(r) = row {
                return super::postgres_sql::values(&r, 0);
            }
        }
        Err(Error::Usage(
            "get_or_insert: the key kept changing under this call".into(),
        ))
    }

    /// Deletes `key`; true if it was there.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn delete(&self, key: KeyRef<'_>) -> Result<bool> {
        let k = [Self::key_param(key)?];
        Ok(self
            .conn
            .run(Retry::Safe, |c| c.execute(&self.sql.delete, &params(&k)))?
            == 1)
    }

    /// Deletes many keys in one statement; returns how many were there.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn delete_many(&self, keys: &[KeyRef<'_>]) -> Result<u64> {
        let ks: Vec<Param<'_>> = keys
            .iter()
            .map(|k| Self::key_param(*k))
            .collect::<Result<_>>()?;
        self.conn
            .run(Retry::Safe, |c| c.execute(&self.sql.delete_many, &[&ks]))
    }

    /// Deletes `key` and returns its values (atomic).
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn remove(&self, key: KeyRef<'_>) -> Result<Option<Vec<Value>>> {
        let k = [Self::key_param(key)?];
        let row = self
            .conn
            .run(Retry::Never, |c| c.query_opt(&self.sql.remove, &params(&k)))?;
        row.map(|r| super::postgres_sql::values(&r, 0)).transpose()
    }

    /// Deletes and returns the newest (`last`) or oldest entry: key first, then values.
    /// Entries locked by other transactions are skipped (`FOR UPDATE SKIP LOCKED`), so
    /// concurrent poppers never get the same entry.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn pop(&self, last: bool) -> Result<Option<Vec<Value>>> {
        let sql = if last {
            &self.sql.pop_last
        } else {
            &self.sql.pop_first
        };
        let row = self.conn.run(Retry::Never, |c| c.query_opt(sql, &[]))?;
        row.map(|r| super::postgres_sql::values(&r, 0)).transpose()
    }

    /// One page of entries in insertion order (or reversed), after the position `after`
    /// (`None`: from the start): `(position, [key, values…])` rows.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn page(
        &self,
        after: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<Value>)>> {
        let (sql, from) = if reverse {
            (&self.sql.page_backward, after.unwrap_or(i64::MAX))
        } else {
            (&self.sql.page_forward, after.unwrap_or(i64::MIN))
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn
            .run(Retry::Safe, |c| c.query(sql, &[&from, &limit]))?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i64>(0), super::postgres_sql::values(r, 1)?)))
            .collect()
    }

    /// `SELECT _key, columns … [WHERE filter] ORDER BY order (default: insertion order)
    /// [LIMIT] [OFFSET]`: `filter` and `order` are trusted SQL with SQLite-style
    /// placeholders (`?`, `?NNN`, `:name`), bound from `positional` and `named`.
    ///
    /// # Errors
    /// [`Error::Server`] for bad SQL, [`Error::Usage`] for a missing parameter.
    pub fn query(
        &self,
        filter: Option<&str>,
        positional: &[Value],
        named: &[(String, Value)],
        order: Option<&str>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> Result<Vec<Vec<Value>>> {
        let mut sql = self.sql.select.clone();
        let mut bound: Vec<Placeholder> = Vec::new();
        if let Some(f) = filter {
            let (f, order_of) = translate(f, 1)?;
            sql.push_str(" WHERE ");
            sql.push_str(&f);
            bound = order_of;
        }
        match order {
            Some(o) => {
                let (o, extra) = translate(o, bound.len() + 1)?;
                sql.push_str(" ORDER BY ");
                sql.push_str(&o);
                bound.extend(extra);
            }
            None => sql.push_str(" ORDER BY \"_id\""),
        }
        if let Some(l) = limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        if let Some(o) = offset {
            sql.push_str(&format!(" OFFSET {o}"));
        }
        let mut p: Vec<Param<'_>> = Vec::with_capacity(bound.len());
        for b in &bound {
            let v = match b {
                Placeholder::Index(i) => positional.get(*i).ok_or_else(|| {
                    Error::Usage(format!(
                        "the query needs parameter {} but {} were given",
                        i + 1,
                        positional.len()
                    ))
                })?,
                Placeholder::Name(n) => named
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v)
                    .ok_or_else(|| Error::Usage(format!("no value for parameter :{n}")))?,
            };
            p.push(Param(v.as_ref()));
        }
        let rows = self.conn.run(Retry::Safe, |c| c.query(&sql, &params(&p)))?;
        rows.iter()
            .map(|r| super::postgres_sql::values(r, 0))
            .collect()
    }

    /// Deletes every entry.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn clear(&self) -> Result<()> {
        self.conn
            .run(Retry::Safe, |c| c.execute(&self.sql.clear, &[]))?;
        Ok(())
    }

    /// The equivalent of SQLite's integrity check: the table is readable and its keys are
    /// unique and not NULL. `[]` when healthy, else the problems.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn check(&self) -> Result<Vec<String>> {
        let t = &self.table;
        let q = format!(
            "SELECT count(*) FILTER (WHERE \"_key\" IS NULL), count(*) - count(DISTINCT \"_key\") FROM {t}"
        );
        let r = self.conn.run(Retry::Safe, |c| c.query_one(&q, &[]))?;
        let (nulls, dups): (i64, i64) = (r.get(0), r.get(1));
        let mut out = Vec::new();
        if nulls > 0 {
            out.push(format!(
                "{nulls} rows of {} have a NULL key",
                self.spec.name
            ));
        }
        if dups > 0 {
            out.push(format!("{dups} duplicate keys in {}", self.spec.name));
        }
        Ok(out)
    }
}

/// A SQL literal of a default value.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format!("{r:?}::double precision"),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("'\\x{hex}'::bytea")
        }
    }
}

/// `v` as a literal for a column of PostgreSQL type `ty` (0/1 as `false`/`true` for a
/// `boolean`, text cast for a `jsonb` column).
fn typed_literal(v: &Value, ty: &str) -> String {
    match (v, ty) {
        (Value::Integer(i), "boolean") => (*i != 0).to_string(),
        (Value::Text(_), "jsonb") => format!("{}::jsonb", literal(v)),
        _ => literal(v),
    }
}

fn same_key(stored: &Value, key: KeyRef<'_>) -> bool {
    match (stored, key) {
        (Value::Integer(a), KeyRef::Float(b)) => (*a as f64) == b,
        (Value::Real(a), KeyRef::Int(b)) => *a == b as f64,
        (Value::Real(a), KeyRef::Float(b)) => *a == b,
        _ => false,
    }
}

fn same_key_ref(a: KeyRef<'_>, b: KeyRef<'_>) -> bool {
    match (a, b) {
        (KeyRef::Int(x), KeyRef::Int(y)) => x == y,
        (KeyRef::Float(x), KeyRef::Float(y)) => x == y,
        (KeyRef::Int(x), KeyRef::Float(y)) | (KeyRef::Float(y), KeyRef::Int(x)) => x as f64 == y,
        (KeyRef::Text(x), KeyRef::Text(y)) => x == y,
        (KeyRef::Blob(x), KeyRef::Blob(y)) => x == y,
        _ => false,
    }
}

/// A typed store on PostgreSQL, with the method names of [`DiskStore`](crate::DiskStore).
///
/// ```no_run
/// # fn main() -> diskstore::Result<()> {
/// use diskstore::remote::postgres::PgStore;
/// let store: PgStore<String, i64> = PgStore::open("postgresql://postgres@127.0.0.1/db")?;
/// store.insert("a", &1)?;
/// assert_eq!(store.get("a")?, Some(1));
/// # Ok(())
/// # }
/// ```
pub struct PgStore<K, V> {
    table: PgTable,
    _types: PhantomData<fn() -> (K, V)>,
}

/// Entries fetched per round trip by [`PgStore::iter`].
const PAGE: usize = 512;

impl<K: Key, V: Record> PgStore<K, V> {
    /// Opens (creating or migrating) the record's table (or `"DiskStore"`).
    ///
    /// # Errors
    /// As [`PgTable::open`].
    pub fn open(url: &str) -> Result<Self> {
        Self::open_table(url, V::TABLE.unwrap_or(crate::DEFAULT_TABLE))
    }

    /// Opens the named table.
    ///
    /// # Errors
    /// As [`PgTable::open`].
    pub fn open_table(url: &str, name: &str) -> Result<Self> {
        Self::open_spec(
            url,
            TableSpec {
                name: name.to_owned(),
                key_type: K::COLUMN_TYPE,
                columns: V::columns(),
            },
        )
    }

    /// Opens the table `spec` describes (its columns must be the record's).
    ///
    /// # Errors
    /// As [`PgTable::open`].
    pub(crate) fn open_spec(url: &str, spec: TableSpec) -> Result<Self> {
        Ok(PgStore {
            table: PgTable::open(url, spec)?,
            _types: PhantomData,
        })
    }

    /// Opens the table `spec` describes read-only (see [`PgTable::open_read_only`]).
    ///
    /// # Errors
    /// As [`PgTable::open_read_only`].
    pub(crate) fn open_read_only_spec(url: &str, spec: TableSpec) -> Result<Self> {
        Ok(PgStore {
            table: PgTable::open_read_only(url, spec)?,
            _types: PhantomData,
        })
    }

    /// A read-only handle on the same table (as [`DiskStore::read_only`](crate::DiskStore::read_only)):
    /// new sessions, read-only on the server.
    ///
    /// # Errors
    /// As [`PgTable::open_read_only`].
    pub fn read_only(&self) -> Result<Self> {
        Ok(PgStore {
            table: self.table.read_only()?,
            _types: PhantomData,
        })
    }

    /// The type-erased table.
    pub fn table(&self) -> &PgTable {
        &self.table
    }

    fn decode(values: &[Value]) -> Result<V> {
        let row = Row::new(RowSource::Values(values), values.len() - 1);
        V::read(&row)
    }

    fn decode_value(values: Vec<Value>) -> Result<V> {
        let mut full = Vec::with_capacity(values.len() + 1);
        full.push(Value::Null);
        full.extend(values);
        Self::decode(&full)
    }

    fn decode_key(v: &Value) -> Result<K> {
        K::from_value(v.as_ref()).map_err(|message| Error::Decode {
            column: "_key".into(),
            message,
        })
    }

    fn cells(value: &V) -> Result<Vec<Cell<'_>>> {
        let mut out = Vec::new();
        value.write(&mut out)?;
        Ok(out)
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn get<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>> {
        self.table
            .get(key.as_key())?
            .map(Self::decode_value)
            .transpose()
    }

    /// The values of many keys in one round trip.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn get_many<Q: AsKey>(&self, keys: &[Q]) -> Result<Vec<Option<V>>> {
        let ks: Vec<KeyRef<'_>> = keys.iter().map(AsKey::as_key).collect();
        self.table
            .get_many(&ks)?
            .into_iter()
            .map(|v| v.map(Self::decode_value).transpose())
            .collect()
    }

    /// True when `key` is stored.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn contains_key<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<bool> {
        self.table.contains(key.as_key())
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn len(&self) -> Result<u64> {
        self.table.len()
    }

    /// True when empty.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn is_empty(&self) -> Result<bool> {
        self.table.is_empty()
    }

    /// Stores `value` under `key` (an overwrite keeps the key's position).
    ///
    /// # Errors
    /// As [`PgTable::set`].
    pub fn insert<Q: AsKey + ?Sized>(&self, key: &Q, value: &V) -> Result<()> {
        self.table.set(key.as_key(), &Self::cells(value)?)
    }

    /// Stores many entries in one round trip; returns how many were given.
    ///
    /// # Errors
    /// As [`PgTable::set`].
    pub fn extend<'a, Q: AsKey + 'a>(
        &self,
        items: impl IntoIterator<Item = (&'a Q, &'a V)>,
    ) -> Result<usize>
    where
        V: 'a,
    {
        let items: Vec<(KeyRef<'a>, Vec<Cell<'a>>)> = items
            .into_iter()
            .map(|(k, v)| Ok((k.as_key(), Self::cells(v)?)))
            .collect::<Result<_>>()?;
        self.table.set_many(&items)?;
        Ok(items.len())
    }

    /// Stores `value` only if `key` is new; true if stored (atomic).
    ///
    /// # Errors
    /// As [`PgTable::set`].
    pub fn add<Q: AsKey + ?Sized>(&self, key: &Q, value: &V) -> Result<bool> {
        self.table.insert_new(key.as_key(), &Self::cells(value)?)
    }

    /// The stored value, after storing `default` if the key was new (atomic).
    ///
    /// # Errors
    /// As [`PgTable::set`].
    pub fn get_or_insert<Q: AsKey + ?Sized>(&self, key: &Q, default: &V) -> Result<V> {
        Self::decode_value(
            self.table
                .get_or_insert(key.as_key(), &Self::cells(default)?)?,
        )
    }

    /// Deletes `key` and returns its value (atomic).
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn remove<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>> {
        self.table
            .remove(key.as_key())?
            .map(Self::decode_value)
            .transpose()
    }

    /// Deletes many keys in one round trip; returns how many were there.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn remove_many<Q: AsKey>(&self, keys: &[Q]) -> Result<u64> {
        let ks: Vec<KeyRef<'_>> = keys.iter().map(AsKey::as_key).collect();
        self.table.delete_many(&ks)
    }

    fn popped(row: Option<Vec<Value>>) -> Result<Option<(K, V)>> {
        row.map(|v| Ok((Self::decode_key(&v[0])?, Self::decode(&v)?)))
            .transpose()
    }

    /// Deletes and returns the newest entry.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn pop_last(&self) -> Result<Option<(K, V)>> {
        Self::popped(self.table.pop(true)?)
    }

    /// Deletes and returns the oldest entry.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn pop_first(&self) -> Result<Option<(K, V)>> {
        Self::popped(self.table.pop(false)?)
    }

    /// Every entry in insertion order (fetched a page per round trip).
    ///
    /// # Errors
    /// As [`PgTable::get`]; the iterator yields the error of a failed page.
    pub fn iter(&self) -> impl Iterator<Item = Result<(K, V)>> + '_ {
        let mut after = None;
        let mut buf: std::vec::IntoIter<(i64, Vec<Value>)> = Vec::new().into_iter();
        let mut done = false;
        std::iter::from_fn(move || {
            loop {
                if let Some((pos, row)) = buf.next() {
                    after = Some(pos);
                    return Some(
                        Self::decode_key(&row[0]).and_then(|k| Ok((k, Self::decode(&row)?))),
                    );
                }
                if done {
                    return None;
                }
                match self.table.page(after, false, PAGE) {
                    Ok(page) => {
                        done = page.len() < PAGE;
                        buf = page.into_iter();
                    }
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                }
            }
        })
    }

    /// The keys in insertion order.
    ///
    /// # Errors
    /// As [`PgStore::iter`].
    pub fn keys(&self) -> impl Iterator<Item = Result<K>> + '_ {
        self.iter().map(|r| r.map(|(k, _)| k))
    }

    /// Entries matching a trusted SQL filter (see [`PgTable::query`]); `?` parameters.
    ///
    /// # Errors
    /// As [`PgTable::query`].
    pub fn query(
        &self,
        filter: Option<&str>,
        params: &[Value],
        order: Option<&str>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> Result<Vec<(K, V)>> {
        self.table
            .query(filter, params, &[], order, limit, offset)?
            .iter()
            .map(|row| Ok((Self::decode_key(&row[0])?, Self::decode(row)?)))
            .collect()
    }

    /// Deletes every entry.
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn clear(&self) -> Result<()> {
        self.table.clear()
    }

    /// See [`PgTable::check`].
    ///
    /// # Errors
    /// As [`PgTable::get`].
    pub fn check(&self) -> Result<Vec<String>> {
        self.table.check()
    }

    /// Begins a write transaction on this thread (see [`PgTable::begin_write`]): every
    /// call of this store on this thread runs in it until the guard commits; dropping it
    /// uncommitted rolls back. Calling `begin` again inside opens a savepoint (nested, as
    /// [`WriteTransaction::savepoint`](crate::WriteTransaction::savepoint) on SQLite).
    ///
    /// # Errors
    /// [`Error::Connection`] when the server cannot be reached.
    pub fn begin(&self) -> Result<PgTransaction<'_>> {
        self.table.begin_write()?;
        Ok(PgTransaction {
            conn: &self.table.conn,
            done: false,
        })
    }
}

/// One transaction level (the outermost transaction or a savepoint) of a thread; rolls
/// back when dropped uncommitted.
pub struct PgTransaction<'a> {
    conn: &'a PgConn,
    done: bool,
}

impl PgTransaction<'_> {
    /// A nested level (`SAVEPOINT`) inside this one.
    ///
    /// # Errors
    /// See [`PgConn::begin`].
    pub fn savepoint(&self) -> Result<PgTransaction<'_>> {
        self.conn.begin()?;
        Ok(PgTransaction {
            conn: self.conn,
            done: false,
        })
    }

    /// Commits this level (the outermost: `COMMIT`; a savepoint: `RELEASE`).
    ///
    /// # Errors
    /// See [`PgConn::end`].
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.end(true)
    }

    /// Rolls this level back.
    ///
    /// # Errors
    /// See [`PgConn::end`].
    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.conn.end(false)
    }
}

impl Drop for PgTransaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.end(false);
        }
    }
}

impl ColumnType {
    /// The PostgreSQL type this column type is stored as.
    pub fn postgres_sql(self) -> &'static str {
        pg_type(self)
    }
}
