//! The command line, as clap derive types.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The exit codes, also printed at the end of `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    a key that had to exist was not found (get, ttl, expire, persist, del)
  2    usage error: bad arguments, malformed URL, invalid namespace, key, pattern or TTL;
       for restore, a damaged dump (the keys before the damage are written)
  3    the store is unreachable, did not answer in time, or its file cannot be opened
       (missing for a read, not a namestore file, damaged: see `namestore check`)
  4    the store refused the operation (incr of a non-integer, overflow, credentials, an
       untrusted TLS certificate) or failed; for check: the file is damaged beyond repair
  5    clear was not confirmed; nothing was deleted
  70   internal error: a bug in namestore (please report it)
  130  bench was interrupted (Ctrl-C); its keys were removed";

const DUMP_HELP: &str = "\
Move a store: namestore --url redb:///var/lib/app.redb dump | namestore --url redis://host restore

A dump is JSON lines: a first line naming the format, a line per key
({\"namespace\",\"key\",\"value\" or \"value_base64\",\"expires_at_ms\"}), and a last line
counting the keys, so a dump cut short is refused (the keys before the cut are restored).
Expiry is absolute: a key restored later keeps the life it had left; one expired since is
skipped. A dump of a store in use is not a snapshot: each key is read when the walk reaches it.";

const NAMESPACE_HELP: &str = "A namespace is written ROOT:DOMAIN or as two words, ROOT DOMAIN.";

/// Inspect, change and measure a namestore from the terminal.
///
/// Every command works on the store named by --url (or NAMESTORE_URL): the embedded in-memory
/// store (memory://, empty in every new process: good for `bench` and `demo`), a Redis server
/// (redis://, rediss://, redis+unix://, redis+cluster://, rediss+cluster://, redis+sentinel://,
/// rediss+sentinel://) or a persistent file (redb:///path/file.redb).
#[derive(Debug, Parser)]
#[command(name = "namestore", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// The store: memory://, redis://[user:pass@]host[:port][/db], rediss://…,
    /// redis+unix:///path/redis.sock[?db=N],
    /// redis+cluster://host:port,host:port, rediss+cluster://…,
    /// redis+sentinel://host:26379,host:26379/master[/db], redb:///path/file.redb
    #[arg(
        long,
        global = true,
        env = "NAMESTORE_URL",
        hide_env_values = true,
        default_value = "memory://",
        value_name = "URL"
    )]
    pub url: String,

    /// Print JSON instead of text (one document; listings are arrays written as they stream)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a key's value
    #[command(
        override_usage = "namestore get [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY>",
        after_help = NAMESPACE_HELP
    )]
    Get {
        #[command(flatten)]
        target: Words,
        /// Write the value's exact bytes to stdout, with no newline
        #[arg(long, conflicts_with = "json")]
        raw: bool,
    },
    /// Store a value, replacing any value and TTL the key had
    #[command(
        override_usage = "namestore set [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY> <VALUE>\n       namestore set [OPTIONS] --stdin <ROOT:DOMAIN | ROOT DOMAIN> <KEY>",
        after_help = NAMESPACE_HELP
    )]
    Set {
        #[command(flatten)]
        target: Words,
        /// Expire the key after this long: 30s, 15m, 1h 30m, 500ms
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        ttl: Option<Duration>,
        /// Read the value's bytes from stdin instead of an argument
        #[arg(long)]
        stdin: bool,
    },
    /// Delete keys; exits 1 unless every key named was present
    #[command(
        override_usage = "namestore del [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY>...",
        after_help = NAMESPACE_HELP
    )]
    Del {
        #[command(flatten)]
        target: Words,
    },
    /// Print whether a key is present: true or false
    #[command(
        override_usage = "namestore exists [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY>",
        after_help = NAMESPACE_HELP
    )]
    Exists {
        #[command(flatten)]
        target: Words,
    },
    /// Print how long a key has to live, or `no expiry`
    #[command(
        override_usage = "namestore ttl [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY>",
        after_help = NAMESPACE_HELP
    )]
    Ttl {
        #[command(flatten)]
        target: Words,
    },
    /// Give a present key a new TTL (0s deletes it)
    #[command(
        override_usage = "namestore expire [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY> <DURATION>",
        after_help = NAMESPACE_HELP
    )]
    Expire {
        #[command(flatten)]
        target: Words,
    },
    /// Remove a present key's TTL
    #[command(
        override_usage = "namestore persist [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY>",
        after_help = NAMESPACE_HELP
    )]
    Persist {
        #[command(flatten)]
        target: Words,
    },
    /// Add to a counter (1 unless BY is given) and print the new value
    #[command(
        override_usage = "namestore incr [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY> [BY]",
        after_help = NAMESPACE_HELP
    )]
    Incr(Counter),
    /// Subtract from a counter (1 unless BY is given) and print the new value
    #[command(
        override_usage = "namestore decr [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> <KEY> [BY]",
        after_help = NAMESPACE_HELP
    )]
    Decr(Counter),
    /// List the keys matching a glob pattern (`*` unless given), as they stream in
    #[command(
        override_usage = "namestore keys [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN> [PATTERN]",
        after_help = "A namespace is written ROOT:DOMAIN or as two words, ROOT DOMAIN.\n\
                      Patterns: * any run, ? one character, [abc] [a-z] [^a] a set, \\x a literal x."
    )]
    Keys {
        #[command(flatten)]
        target: Words,
    },
    /// Delete every key of a namespace, after asking (unless --yes)
    #[command(
        override_usage = "namestore clear [OPTIONS] <ROOT:DOMAIN | ROOT DOMAIN>",
        after_help = NAMESPACE_HELP
    )]
    Clear {
        #[command(flatten)]
        target: Words,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// List the namespaces holding keys, with their key counts
    Namespaces,
    /// Write the keys of a store (or of the namespaces named) to stdout as JSON lines, with
    /// their values and expiry, for `restore` into any store
    #[command(after_help = DUMP_HELP)]
    Dump {
        /// The namespaces to dump (every namespace holding keys when none is named)
        #[arg(value_name = "ROOT:DOMAIN")]
        namespaces: Vec<String>,
    },
    /// Write the keys of a dump read from stdin into the store; a key the store holds
    /// already is kept unless --replace is given
    #[command(after_help = DUMP_HELP)]
    Restore {
        /// Overwrite the keys the store holds already (their values and TTLs)
        #[arg(long)]
        replace: bool,
    },
    /// Check a redb file's integrity, and repair it if it is damaged (the file must not be open
    /// elsewhere)
    Check,
    /// Give the free space of a redb file back to the filesystem: redb reuses the pages that
    /// deletions and expiries free but never shrinks its file (the file must not be open
    /// elsewhere)
    Compact,
    /// Measure the store: the performance guide's workloads, with latency percentiles
    Bench(Bench),
    /// A tour of the commands on a fresh in-memory store
    Demo,
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `namestore man > namestore.1`
    Man,
}

impl Command {
    /// Whether the command only reads the store: it must not create one (a mistyped path is
    /// an error, not a new empty file).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Get { .. }
                | Command::Exists { .. }
                | Command::Ttl { .. }
                | Command::Keys { .. }
                | Command::Namespaces
                | Command::Dump { .. }
        )
    }

    /// Whether the command changes the store.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Command::Set { .. }
                | Command::Del { .. }
                | Command::Expire { .. }
                | Command::Persist { .. }
                | Command::Incr(_)
                | Command::Decr(_)
                | Command::Clear { .. }
                | Command::Restore { .. }
        )
    }
}

/// The words naming the namespace and the command's arguments: `ROOT:DOMAIN` or
/// `ROOT DOMAIN`, then the rest.
#[derive(Debug, Args)]
pub struct Words {
    /// The namespace (ROOT:DOMAIN or ROOT DOMAIN), then the command's arguments
    #[arg(
        num_args = 0..,
        value_name = "ARGS",
        allow_negative_numbers = true
    )]
    pub words: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Counter {
    #[command(flatten)]
    pub target: Words,
    /// Give a key created by this call this TTL; an existing key keeps its own
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ttl: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// How long to run each operation: 2s, 500ms, 1m
    #[arg(long, value_parser = parse_run_time, default_value = "2s", value_name = "DURATION")]
    pub time: Duration,
    /// Operations in flight at once: tokio tasks on a network store or a file, threads on the
    /// in-memory store
    #[arg(long, short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Operations to run, comma-separated (default: all of them)
    #[arg(long, value_delimiter = ',', value_name = "OPS")]
    pub ops: Vec<crate::bench::Op>,
    /// Live keys the workloads pick from
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: u32,
    /// Bytes per value
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=16 * 1024 * 1024))]
    pub value_size: u32,
    /// The namespace the bench writes to (and clears afterwards)
    #[arg(
        long,
        default_value = "namestore-bench:data",
        value_name = "ROOT:DOMAIN"
    )]
    pub namespace: String,
}

/// Parses a duration such as `30s`, `1h 30m`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (expected a duration such as 30s, 15m, 1h 30m or 500ms)"))
}

/// A bench run's length: a duration of at least a millisecond and at most 100 years, the
/// longest a TTL may be (a longer one went past what the clock holds, and the bench panicked).
fn parse_run_time(text: &str) -> Result<Duration, String> {
    let time = parse_duration(text)?;
    if time < Duration::from_millis(1) {
        return Err("a run lasts at least 1ms".to_owned());
    }
    if time > namestore::Ttl::MAX.as_duration() {
        return Err("a run lasts at most 100 years".to_owned());
    }
    Ok(time)
}
