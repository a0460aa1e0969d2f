//! `namestore`: inspect, change and measure any namestore from the terminal.
//!
//! See `namestore --help`, and the README's "The `namestore` command" section.

mod args;
mod bench;
mod demo;
mod dump;
mod output;
mod run;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};

use clap::{CommandFactory, Parser};

use namestore::drivers::redb::{Integrity, RedbConfig, RedbDriver};
use namestore::{AnyDriver, ErrorKind};

use crate::args::{Cli, Command};
use crate::output::{Failure, USAGE, one_line};
use crate::run::Session;

/// The last panic's message. The library contains panics inside its storage engine (a
/// damaged file) and answers with an error, so a panic is only reported if it reaches `main`.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        *PANIC.lock().unwrap_or_else(PoisonError::into_inner) = Some(one_line(&info.to_string()));
    }));
    match std::panic::catch_unwind(run_cli) {
        Ok(code) => code,
        // A bug should still end in one line, not a backtrace.
        Err(_) => {
            let message = PANIC
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            eprintln!(
                "error: internal error, please report it: {}",
                output::escape_controls(&message)
            );
            ExitCode::from(output::INTERNAL)
        }
    }
}

fn run_cli() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return clap_exit(&error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // `bench --concurrency` on the in-memory store runs one blocking thread per task.
        .max_blocking_threads(4096 + 64)
        .build()
    {
        Ok(runtime) => Runtime(Some(runtime)),
        Err(error) => {
            return fail(Failure::new(
                output::REFUSED,
                format_args!("tokio: {error}"),
            ));
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = runtime
        .block_on(dispatch(cli, &mut out))
        .and_then(|()| out.flush().map_err(Failure::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // What the command wrote before it failed (e.g. `del`'s count) comes first.
            let _ = out.flush();
            fail(failure)
        }
    }
}

/// The runtime, let go without waiting for its blocking threads when a panic unwinds out of
/// [`run_cli`]: the bench's loops run on them until told to stop, and a runtime dropped as it
/// is waits for them, so a panic in the bench hung the process (at full CPU, deaf to Ctrl-C)
/// instead of ending in [`main`]'s one line.
struct Runtime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(runtime) = self.0.take()
        {
            runtime.shutdown_background();
        }
    }
}

async fn dispatch(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    if cli.json
        && matches!(
            cli.command,
            Command::Demo | Command::Completions { .. } | Command::Man | Command::Dump { .. }
        )
    {
        return Err(Failure::usage(
            "--json applies to the store commands and bench, not to demo, completions or man \
             (dump always writes JSON lines)",
        ));
    }
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "namestore", out);
            Ok(())
        }
        Command::Man => Ok(clap_mangen::Man::new(Cli::command()).render(out)?),
        Command::Demo => demo::run(out).await,
        Command::Bench(bench) => {
            let store = open_store(&cli.url, false)?;
            bench::run(store, &cli.url, &bench, cli.json, out).await
        }
        Command::Check => check(&cli.url, cli.json, out),
        Command::Compact => compact(&cli.url, cli.json, out).await,
        Command::Restore { .. } if io::IsTerminal::is_terminal(&io::stdin()) => {
            // A dump comes on stdin; on a terminal, `restore` would wait for one in silence
            // (and a file store would be created first).
            Err(Failure::usage(
                "restore reads a dump on stdin, which is a terminal: namestore restore < \
                 app.dump (nothing was written)",
            ))
        }
        command => {
            let store = open_store(&cli.url, command.reads_only())?;
            let memory = store.downcast_ref::<namestore::MemoryDriver>().is_some();
            let writes = command.writes();
            let session = Session {
                store,
                url: &cli.url,
                json: cli.json,
            };
            let result = run::run(&session, command, out).await;
            let missed = matches!(&result, Err(f) if f.code == output::NOT_FOUND);
            if memory && (writes || missed) {
                eprintln!(
                    "note: memory:// starts empty in every process and forgets on exit; name a store with --url or NAMESTORE_URL"
                );
            }
            result
        }
    }
}

/// Opens the store a URL names. For a command that only reads, a file store is opened
/// read-only: it is never created or written (so a file on a read-only filesystem can be read,
/// and several such commands share a file), except that a file its writer left open (a crash)
/// is opened to be written, which recovers it, as an application's next open would. A URL
/// that cannot be read is a usage error; a store that cannot be opened (unreachable, a missing
/// or foreign file, a damaged one) exits 3.
fn open_store(url: &str, reads_only: bool) -> Result<AnyDriver, Failure> {
    let opened = match url.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("redb") => {
            let url = format!("redb://{}", &url[scheme.len() + 3..]);
            RedbConfig::from_url(&url).and_then(|mut config| {
                config.create &= !reads_only;
                config.read_only |= reads_only;
                match RedbDriver::open(config.clone()) {
                    Err(error) if config.read_only && needs_recovery(&error) => {
                        config.read_only = false;
                        RedbDriver::open(config)
                    }
                    opened => opened,
                }
                .map(AnyDriver::new)
            })
        }
        _ => namestore::open(url),
    };
    opened.map_err(unreachable)
}

/// The failure of a store that could not be opened or could not answer: exit 3, unless the
/// URL itself was at fault (a usage error).
fn unreachable(error: namestore::Error) -> Failure {
    let mut failure = Failure::from(error);
    if failure.code != USAGE {
        failure.code = output::UNREACHABLE;
    }
    failure
}

/// The settings of the file store `url` names, for `command`, which works on files alone.
fn file_store(url: &str, command: &str) -> Result<RedbConfig, Failure> {
    match url.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("redb") => Ok(RedbConfig::from_url(
            &format!("redb://{}", &url[scheme.len() + 3..]),
        )?),
        _ => Err(Failure::usage(format!(
            "{command} works on a file store: --url redb:///path/to/file.redb"
        ))),
    }
}

/// Whether a read-only open failed because the file's writer left it open (a crash): its
/// recovery writes.
fn needs_recovery(error: &namestore::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<redb::DatabaseError>())
        .is_some_and(|source| matches!(source, redb::DatabaseError::RepairAborted))
}

/// `namestore check`: redb's integrity check and repair on the file the URL names.
fn check(url: &str, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let path = file_store(url, "check")?.path;
    let integrity = RedbDriver::check(&path).map_err(|error| {
        if error.kind() == ErrorKind::Corrupted {
            Failure::from(error)
        } else {
            unreachable(error)
        }
    })?;
    let (word, text) = match integrity {
        Integrity::Intact => (
            "intact",
            "passed redb's integrity check; nothing was changed",
        ),
        _ => (
            "repaired",
            "failed redb's integrity check and was repaired; writes after its last intact commit may be gone",
        ),
    };
    let shown = path.display().to_string();
    if json {
        output::write_json(out, &serde_json::json!({"path": shown, "integrity": word}))?;
    } else {
        writeln!(out, "{word}: {} {text}", output::escape_controls(&shown))?;
    }
    Ok(())
}

/// `namestore compact`: the file the URL names compacted ([`RedbDriver::compact`]); it must
/// exist (it is not created).
async fn compact(url: &str, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let store = RedbDriver::open(RedbConfig {
        create: false,
        ..file_store(url, "compact")?
    })
    .map_err(unreachable)?;
    let compaction = store.compact().await.map_err(unreachable)?;
    let shown = store.path().display().to_string();
    if json {
        let shown = serde_json::json!({
            "path": shown,
            "before": compaction.before,
            "after": compaction.after,
        });
        output::write_json(out, &shown)?;
    } else {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        writeln!(
            out,
            "compacted: {} from {:.1} MiB to {:.1} MiB",
            output::escape_controls(&shown),
            mib(compaction.before),
            mib(compaction.after)
        )?;
    }
    Ok(())
}

/// Prints a failure as one line on stderr and returns its exit code.
fn fail(failure: Failure) -> ExitCode {
    if !failure.message.is_empty() {
        eprintln!("error: {}", failure.message);
    }
    ExitCode::from(failure.code)
}

/// Help and version go to stdout with exit code 0; a usage error becomes one line on stderr
/// (clap's own rendering spreads it over several) with exit code 2.
fn clap_exit(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap writes: the error, maybe a list or a tip, a blank line, the usage, a pointer
            // to --help. Keep the paragraphs before the usage, one line each.
            let rendered = error.render().to_string();
            let before_usage = rendered.split("\nUsage:").next().unwrap_or(&rendered);
            let message = before_usage
                .trim_start_matches("error:")
                .split("\n\n")
                .filter(|p| !p.trim().starts_with("For more information"))
                .map(one_line)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            eprintln!("error: {message} (see --help)");
            ExitCode::from(USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::Runtime;

    /// A panic while a blocking thread spins (a bench loop not yet told to stop) unwinds
    /// through the runtime without waiting for that thread.
    #[test]
    fn a_panic_lets_the_runtime_go_without_its_blocking_threads() {
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = Arc::clone(&stop);
        let (unwound, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(move || {
                let runtime = Runtime(Some(tokio::runtime::Runtime::new().unwrap()));
                runtime.spawn_blocking(move || {
                    while !spinning.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
                panic!("a bench failed");
            });
            let _ = unwound.send(result.is_err());
        });
        let answer = done.recv_timeout(Duration::from_secs(20));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            answer,
            Ok(true),
            "the panic did not unwind past the runtime"
        );
    }
}
