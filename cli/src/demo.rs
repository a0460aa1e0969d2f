//! `namestore demo`: the README's quick tour, run for real on one fresh in-memory store.

use std::io::Write;

use clap::Parser;
use namestore::AnyDriver;

use crate::args::{Cli, Command};
use crate::output::Failure;
use crate::run::{Session, run as run_command};

/// The tour: each line runs as `namestore <line>` against the same store.
const TOUR: &[&str] = &[
    "set app:sessions s-7f3a user=42 --ttl 30m",
    "get app:sessions s-7f3a",
    "ttl app:sessions s-7f3a",
    "incr app:visits home",
    "incr app:visits home 10",
    "set app:sessions s-91bc user=7",
    "keys app:sessions s-*",
    "namespaces",
    "get app:sessions s-7f3a --json",
    "del app:sessions s-7f3a",
    "get app:sessions s-7f3a",
    "incr app:sessions s-91bc",
];

pub async fn run(out: &mut dyn Write) -> Result<(), Failure> {
    let url = "memory://";
    let session = Session {
        store: namestore::open(url)?,
        url,
        json: false,
    };
    writeln!(
        out,
        "A tour of namestore on a fresh in-memory store ({} commands):",
        TOUR.len()
    )?;
    for line in TOUR {
        tour_step(&session.store, url, line, out).await?;
    }
    writeln!(
        out,
        "\nThe same commands work on Redis and on a file: --url redis://localhost:6379 or\n\
         --url redb:///path/to/data.redb (or set NAMESTORE_URL). Measure a store with\n\
         `namestore bench`; `namestore --help` lists every command."
    )?;
    Ok(())
}

/// Runs one line of the tour and shows it as a terminal would, errors included: the tour
/// shows a missing key and a non-integer on purpose.
async fn tour_step(
    store: &AnyDriver,
    url: &str,
    line: &str,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    writeln!(out, "\n$ namestore {line}")?;
    let words = std::iter::once("namestore").chain(line.split_whitespace());
    let cli = Cli::try_parse_from(words).map_err(|e| {
        Failure::new(
            crate::output::USAGE,
            format_args!("demo line `{line}`: {e}"),
        )
    })?;
    if matches!(
        cli.command,
        Command::Bench(_) | Command::Demo | Command::Completions { .. } | Command::Man
    ) {
        return Err(Failure::usage("the demo runs store commands only"));
    }
    let session = Session {
        store: store.clone(),
        url,
        json: cli.json,
    };
    match run_command(&session, cli.command, out).await {
        Ok(()) => Ok(()),
        Err(failure) => {
            writeln!(
                out,
                "error: {} (exit code {})",
                failure.message, failure.code
            )?;
            Ok(())
        }
    }
}
