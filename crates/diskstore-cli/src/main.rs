//! `diskstore`: look into, change, check, export/import and benchmark store files.
//!
//! Works on any store table (`_key` plus value columns), whatever program wrote it: the
//! layout is read from the file, and entries go through the engine's type-erased
//! [`diskstore::Table`]. Errors are one line on stderr naming the file, with a non-zero
//! exit status.

mod bench;
mod clock;
mod dump;
mod fail;
mod file;
mod info;
mod mp;
mod progress;
mod rows;
mod scale;
mod show;
mod typed;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::fail::{Fail, Outcome};
use crate::show::{BytesAs, Given};

/// Look into, change, check, export/import and benchmark diskstore files (SQLite).
#[derive(Parser)]
#[command(name = "diskstore", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the tables of a file, their layout and row counts, and file facts.
    Info {
        /// The store file.
        file: PathBuf,
        /// Print one JSON document instead.
        #[arg(long)]
        json: bool,
    },
    /// List entries (insertion order; key order with --prefix).
    Ls {
        /// The store file.
        file: PathBuf,
        /// The table (default: the only store table, or "DiskStore").
        #[arg(long, short)]
        table: Option<String>,
        /// Show at most N entries.
        #[arg(long, short = 'n')]
        limit: Option<u64>,
        /// Newest first (with --prefix: descending key order).
        #[arg(long, short)]
        reverse: bool,
        /// Only keys starting with this (text; bytes with --key-type hex/base64).
        #[arg(long, short)]
        prefix: Option<String>,
        /// How --prefix is read.
        #[arg(long, value_enum, default_value_t)]
        key_type: Given,
        /// Print dump lines (typed JSON, see docs/dump-format.md).
        #[arg(long)]
        json: bool,
        /// How bytes are shown.
        #[arg(long, value_enum, default_value_t)]
        bytes: BytesAs,
    },
    /// Print the value of one key.
    Get {
        /// The store file.
        file: PathBuf,
        /// The key.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// The table (default: the only store table, or "DiskStore").
        #[arg(long, short)]
        table: Option<String>,
        /// How the key is read (default: by the key column's type).
        #[arg(long, value_enum, default_value_t)]
        key_type: Given,
        /// Print the dump line (typed JSON).
        #[arg(long)]
        json: bool,
        /// How bytes are printed.
        #[arg(long, value_enum, default_value = "hex")]
        bytes: rows::GetBytes,
    },
    /// Store a value under a key (inserting or replacing): one VALUE per value column, in
    /// column order; columns left out at the end take their defaults (NULL if nullable).
    ///
    /// Put `--` before a key or value that starts with `-`: `set f.db -- k -1`.
    Set {
        /// The store file.
        file: PathBuf,
        /// The key.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// The values, one per value column, in column order (put options before them).
        #[arg(required = true, allow_hyphen_values = true)]
        values: Vec<String>,
        /// The table (default: the only store table, or "DiskStore").
        #[arg(long, short)]
        table: Option<String>,
        /// How the key is read (default: by the key column's type).
        #[arg(long, value_enum, default_value_t)]
        key_type: Given,
        /// How the values are read (default: by each column's type).
        #[arg(long, value_enum, default_value_t)]
        value_type: Given,
        /// Create the file and table if missing (the Python original's default layout:
        /// BLOB keys, one BLOB "value" column).
        #[arg(long)]
        create: bool,
    },
    /// Delete keys; fails naming the keys that were not there.
    Rm {
        /// The store file.
        file: PathBuf,
        /// The keys.
        #[arg(required = true, allow_hyphen_values = true)]
        keys: Vec<String>,
        /// The table (default: the only store table, or "DiskStore").
        #[arg(long, short)]
        table: Option<String>,
        /// How the keys are read (default: by the key column's type).
        #[arg(long, value_enum, default_value_t)]
        key_type: Given,
    },
    /// Write every store table (or one) as a JSON-lines dump to stdout.
    Export {
        /// The store file.
        file: PathBuf,
        /// Only this table.
        #[arg(long, short)]
        table: Option<String>,
    },
    /// Read a JSON-lines dump from stdin into a file (created if missing); existing keys
    /// are replaced.
    Import {
        /// The store file.
        file: PathBuf,
        /// Rows per transaction.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
        batch: u64,
    },
    /// Run SQLite's integrity check on a file.
    Check {
        /// The store file.
        file: PathBuf,
    },
    /// Rebuild a file to give free space back to the file system.
    Vacuum {
        /// The store file.
        file: PathBuf,
    },
    /// Time the standard workload on ours and on the raw-SQLite floor, side by side.
    Bench {
        /// Ops per measured operation.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
        ops: u64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 1024)]
        value_size: u64,
        /// Folder for the temporary files (default: the system's temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Seconds each system's two mp processes run (90 % get / 10 % set); 0 skips mp.
        #[arg(long, default_value_t = 2.0)]
        mp_seconds: f64,
    },
    /// The scale benchmark's workload at one store size (run by bench/scale.py): bulk load,
    /// random gets, len(), autocommitted sets; prints JSON.
    BenchScale {
        /// Keys loaded before measuring.
        #[arg(long)]
        n: u64,
        /// Autocommitted sets of new keys.
        #[arg(long, default_value_t = 20_000)]
        sets: u64,
        /// Random-hit gets.
        #[arg(long, default_value_t = 20_000)]
        gets: u64,
        /// Folder for the temporary store (default: the system's temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// One process of `bench`'s mp figure (run by `bench` itself).
    #[command(hide = true)]
    BenchMpChild {
        #[arg(long, value_enum)]
        system: mp::System,
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        keys: usize,
        #[arg(long)]
        value_size: usize,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        start_ns: u128,
    },
}

fn run(cli: Cli) -> Outcome<()> {
    match cli.command {
        Command::Info { file, json } => info::info(&file, json),
        Command::Ls {
            file,
            table,
            limit,
            reverse,
            prefix,
            key_type,
            json,
            bytes,
        } => rows::ls(
            &file,
            &rows::LsOptions {
                table: table.as_deref(),
                limit,
                reverse,
                prefix: prefix.as_deref(),
                key_type,
                json,
                bytes,
            },
        ),
        Command::Get {
            file,
            key,
            table,
            key_type,
            json,
            bytes,
        } => rows::get(&file, table.as_deref(), &key, key_type, json, bytes),
        Command::Set {
            file,
            key,
            values,
            table,
            key_type,
            value_type,
            create,
        } => rows::set(
            &file,
            table.as_deref(),
            create,
            &key,
            &values,
            key_type,
            value_type,
        ),
        Command::Rm {
            file,
            keys,
            table,
            key_type,
        } => rows::rm(&file, table.as_deref(), &keys, key_type),
        Command::Export { file, table } => dump::export(&file, table.as_deref()),
        Command::Import { file, batch } => dump::import(
            &file,
            std::io::stdin().lock(),
            "<stdin>",
            usize::try_from(batch).unwrap_or(usize::MAX),
        ),
        Command::Check { file } => info::check(&file),
        Command::Vacuum { file } => info::vacuum(&file),
        Command::Bench {
            ops,
            value_size,
            dir,
            json,
            mp_seconds,
        } => {
            let ops = usize::try_from(ops).map_err(|_| Fail::usage("--ops is too large"))?;
            let size = usize::try_from(value_size)
                .map_err(|_| Fail::usage("--value-size is too large"))?;
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            if !(mp_seconds.is_finite() && mp_seconds >= 0.0) {
                return Err(Fail::usage(
                    "--mp-seconds must be a number of seconds, 0 or more",
                ));
            }
            let figures = bench::run(ops, size, &dir, mp_seconds)?;
            if json {
                println!("{}", bench::to_json(&figures, ops, size));
            } else {
                println!("{}", bench::to_table(&figures, ops, size));
            }
            Ok(())
        }
        Command::BenchScale { n, sets, gets, dir } => {
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            println!("{}", scale::run(n, sets, gets, &dir)?);
            Ok(())
        }
        Command::BenchMpChild {
            system,
            path,
            keys,
            value_size,
            seconds,
            seed,
            start_ns,
        } => mp::child(&mp::Child {
            system,
            path: &path,
            keys,
            value_size,
            seconds,
            seed,
            start_ns,
        }),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic must never reach the user as a backtrace: report it as one line.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("diskstore: internal error: {info}");
    }));
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) if f.quiet => ExitCode::from(u8::try_from(f.code).unwrap_or(1)),
        Ok(Err(f)) => {
            eprintln!("diskstore: {f}");
            ExitCode::from(u8::try_from(f.code).unwrap_or(1))
        }
        Err(_) => ExitCode::from(101),
    }
}
