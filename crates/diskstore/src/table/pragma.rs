//! Per-connection settings changed while a store is open ([`Table::set_pragma`]), and how
//! a raw `PRAGMA` statement is recognised as one ([`Table::shared_pragma`]).
//!
//! A `PRAGMA` that sets a per-connection value (`synchronous`, `foreign_keys`,
//! `cache_size`, ...) acts on the connection that runs it. A thread's raw SQL outside a
//! transaction runs on its own connection, but every autocommitted write of the process
//! runs on the file's writer connection (see `connection.rs`), so a setting meant for
//! writes must reach that connection too: `set_pragma` applies it to both, and the
//! writer connection keeps it when it is reopened, until `close_all()`.

use std::fmt::Display;

use super::Table;
use crate::error::Result;

/// The per-connection pragmas that [`Table::shared_pragma`] recognises: settings that govern
/// what a write does or how it is made durable. Left out on purpose: `busy_timeout` (it
/// would replace the store's busy handler), `query_only`, `journal_mode` and
/// `locking_mode` (they change how the whole file is shared), and the file's own values
/// (`user_version`, `application_id`), which one connection sets for all.
const SHARED: &[&str] = &[
    "analysis_limit",
    "automatic_index",
    "cache_size",
    "cache_spill",
    "case_sensitive_like",
    "cell_size_check",
    "checkpoint_fullfsync",
    "defer_foreign_keys",
    "foreign_keys",
    "fullfsync",
    "ignore_check_constraints",
    "journal_size_limit",
    "legacy_alter_table",
    "max_page_count",
    "mmap_size",
    "recursive_triggers",
    "reverse_unordered_selects",
    "secure_delete",
    "synchronous",
    "temp_store",
    "trusted_schema",
    "wal_autocheckpoint",
];

/// The name (lower case) and value of `sql` when it is exactly one statement
/// `PRAGMA [main.]name = value` or `PRAGMA [main.]name(value)` (any case, an optional
/// `;`) that sets one of the per-connection pragmas a store shares with its writer
/// connection; `None` for anything else (a query, another pragma, several statements).
fn shared_setting(sql: &str) -> Option<(String, String)> {
    let s = sql.trim();
    let s = s.strip_suffix(';').unwrap_or(s).trim_end();
    let rest = strip_keyword(s, "pragma")?;
    let (name, rest) = split_name(rest)?;
    let name = match rest.strip_prefix('.') {
        Some(after) if name.eq_ignore_ascii_case("main") => {
            let (name, more) = split_name(after)?;
            return finish(name, more);
        }
        Some(_) => return None,
        None => name,
    };
    finish(name, rest)
}

/// The value part of `name = value` / `name(value)`, checked.
fn finish(name: &str, rest: &str) -> Option<(String, String)> {
    let rest = rest.trim_start();
    let value = if let Some(v) = rest.strip_prefix('=') {
        v.trim()
    } else {
        rest.strip_prefix('(')?.strip_suffix(')')?.trim()
    };
    let name = name.to_ascii_lowercase();
    if !SHARED.contains(&name.as_str()) {
        return None;
    }
    // The same grammar as the pragmas given at open (no SQL can ride along).
    crate::pragma::pragma_sql(&[(name.clone(), value.to_string())]).ok()?;
    Some((name, value.to_string()))
}

/// `s` after the keyword `kw` (any case) and at least one blank.
fn strip_keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let head = s.get(..kw.len())?;
    let rest = &s[kw.len()..];
    (head.eq_ignore_ascii_case(kw) && rest.starts_with(|c: char| c.is_ascii_whitespace()))
        .then(|| rest.trim_start())
}

/// A leading identifier of `s` and what follows it.
fn split_name(s: &str) -> Option<(&str, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| s.split_at(end))
}

impl Table {
    /// The name (lower case) and value of `sql` when it is exactly one statement
    /// `PRAGMA [main.]name = value` or `PRAGMA [main.]name(value)` (any case, an optional
    /// `;`) setting a per-connection pragma that governs writes (`synchronous`,
    /// `foreign_keys`, `cache_size`, `wal_autocheckpoint`, `max_page_count`, ...), which
    /// [`Table::set_pragma`] should then apply; `None` for anything else. (Not
    /// `busy_timeout`, which would replace the store's busy handler, nor `journal_mode`,
    /// `locking_mode` or `query_only`.)
    pub fn shared_pragma(sql: &str) -> Option<(String, String)> {
        shared_setting(sql)
    }

    /// Sets the per-connection pragma `name` to `value` on this thread's connection and
    /// on the file's writer connection, which runs every write of the process (of every
    /// thread, through every handle opened with the same settings). The writer connection
    /// keeps the setting when it is reopened, until [`Table::close_all`]; this thread's
    /// connection keeps it until it is closed. Other threads' connections, used for their
    /// reads outside transactions, keep theirs.
    ///
    /// A `PRAGMA name = value` run through [`Table::with_connection`] reaches only the
    /// connection it runs on (outside a transaction, this thread's own, which no write
    /// uses): use this for settings meant for writes (`synchronous`, `foreign_keys`, ...).
    ///
    /// # Errors
    /// [`Error::Usage`](crate::Error::Usage) for a name or value that is not a plain
    /// identifier, number or quoted string; SQLite's errors (some settings cannot change
    /// inside a transaction); lock and file errors.
    pub fn set_pragma(&self, name: &str, value: impl Display) -> Result<()> {
        let sql = crate::pragma::pragma_sql(&[(name.to_string(), value.to_string())]);
        let r = sql.and_then(|sql| self.inner.conns.set_pragma(name, &sql));
        self.ctx(r)
    }
}

#[cfg(test)]
mod tests {
    use super::shared_setting;

    fn set(name: &str, value: &str) -> Option<(String, String)> {
        Some((name.to_string(), value.to_string()))
    }

    #[test]
    fn setting_statements_are_recognised_in_either_form_and_any_case() {
        assert_eq!(
            shared_setting("PRAGMA synchronous = FULL"),
            set("synchronous", "FULL")
        );
        assert_eq!(
            shared_setting("  pragma Foreign_Keys=1 ; "),
            set("foreign_keys", "1")
        );
        assert_eq!(
            shared_setting("PRAGMA main.cache_size(-2000)"),
            set("cache_size", "-2000")
        );
        assert_eq!(
            shared_setting("PRAGMA  max_page_count( 64 );"),
            set("max_page_count", "64")
        );
        assert_eq!(
            shared_setting("PRAGMA secure_delete = 'fast'"),
            set("secure_delete", "'fast'")
        );
    }

    #[test]
    fn queries_other_pragmas_and_other_sql_are_not() {
        for sql in [
            "PRAGMA synchronous",
            "PRAGMA table_info(t)",
            "PRAGMA journal_mode = delete",
            "PRAGMA busy_timeout = 5",
            "PRAGMA temp.cache_size = 10",
            "PRAGMA synchronous = FULL; DELETE FROM t",
            "PRAGMA synchronous = (1)",
            "PRAGMAsynchronous = 1",
            "SELECT 1",
            "PRAGMA synchronous = 1 --",
            "",
        ] {
            assert_eq!(shared_setting(sql), None, "{sql}");
        }
    }
}
