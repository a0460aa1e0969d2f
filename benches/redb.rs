//! The persistent driver beside its peers, in one run: raw `redb` (the same work written by
//! hand on the same crate: one transaction per call) and SQLite (`rusqlite`, bundled, WAL
//! journal), each durable and fast, and the in-memory driver for scale. Single calls (get,
//! set, incr, a batch of 10 writes), and write throughput with 1, 8 and 64 concurrent writers.
//!
//! Durable rows: namestore `durable=1`, redb `Durability::Immediate` (its default), SQLite
//! `synchronous=FULL`. Fast rows: namestore `durable=0`, redb `Durability::None`, SQLite
//! `synchronous=NORMAL` (in WAL mode: no sync per commit, only at checkpoints).
//!
//! Run: `cargo bench --features redb --bench redb`; `REDB_ONLY=<substring>` keeps the
//! measurements whose id contains it (`REDB_ONLY='get/'`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use namestore::drivers::redb::{RedbConfig, RedbDriver};
use namestore::{AnyDriver, MemoryDriver, Namespace};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{Connection, OptionalExtension, params};

const LIVE: usize = 1000;
/// Every write changes the value it overwrites (SQLite skips a write that changes nothing,
/// and would not sync at all): the n-th single write goes to key `n % LIVE` with
/// `VALUES[(n / LIVE) % 2]`, after a load with `VALUES[1]`; the n-th batch with
/// `BATCH_VALUES[n % 2]` (each key is in every 99th batch: an odd period, so it alternates).
const VALUES: [&str; 2] = ["value-0123456789", "value-9876543210"];
const BATCH_VALUES: [&str; 2] = ["batch-0123456789", "batch-9876543210"];
const WRITERS: [usize; 3] = [1, 8, 64];

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// One store under measurement.
enum Store {
    Namestore(Namespace<String, AnyDriver>),
    /// redb used directly: a table of key to value, one transaction per call.
    Redb {
        db: Arc<Database>,
        durability: Durability,
    },
    /// SQLite: `kv(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID`, WAL; a connection per
    /// writer (SQLite connections are not shared between threads).
    Sqlite {
        path: PathBuf,
        synchronous: &'static str,
        conn: Mutex<Connection>,
    },
}

fn sqlite(path: &Path, synchronous: &str) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    conn.busy_timeout(Duration::from_secs(60)).unwrap();
    conn.execute(
        "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
        [],
    )
    .unwrap();
    conn
}

fn redb_write(
    db: &Database,
    durability: Durability,
    work: impl FnOnce(&mut redb::Table<&str, &[u8]>),
) {
    let mut txn = db.begin_write().unwrap();
    txn.set_durability(durability).unwrap();
    {
        let mut table = txn.open_table(TABLE).unwrap();
        work(&mut table);
    }
    txn.commit().unwrap();
}

fn sqlite_set(conn: &Connection, key: &str, value: &[u8]) {
    conn.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
        .unwrap()
        .execute(params![key, value])
        .unwrap();
}

impl Store {
    fn get(&self, key: &str, runtime: &tokio::runtime::Runtime) -> Option<Vec<u8>> {
        match self {
            Store::Namestore(ns) => runtime
                .block_on(ns.get(&key.to_owned()))
                .unwrap()
                .map(|v| v.to_vec()),
            Store::Redb { db, .. } => {
                let txn = db.begin_read().unwrap();
                let table = txn.open_table(TABLE).unwrap();
                table.get(key).unwrap().map(|v| v.value().to_vec())
            }
            Store::Sqlite { conn, .. } => conn
                .lock()
                .unwrap()
                .prepare_cached("SELECT value FROM kv WHERE key = ?1")
                .unwrap()
                .query_row(params![key], |row| row.get::<_, Vec<u8>>(0))
                .optional()
                .unwrap(),
        }
    }

    /// A writer of its own: a namespace handle, the shared redb, a new SQLite connection.
    fn writer(&self) -> Writer {
        match self {
            Store::Namestore(ns) => Writer::Namestore(ns.clone()),
            Store::Redb { db, durability } => Writer::Redb(Arc::clone(db), *durability),
            Store::Sqlite {
                path, synchronous, ..
            } => Writer::Sqlite(sqlite(path, synchronous)),
        }
    }
}

enum Writer {
    Namestore(Namespace<String, AnyDriver>),
    Redb(Arc<Database>, Durability),
    Sqlite(Connection),
}

impl Writer {
    fn set(&self, key: &str, value: &'static str, runtime: &tokio::runtime::Runtime) {
        match self {
            Writer::Namestore(ns) => runtime
                .block_on(ns.set(&key.to_owned(), value, None))
                .unwrap(),
            Writer::Redb(db, durability) => redb_write(db, *durability, |t| {
                drop(t.insert(key, value.as_bytes()).unwrap())
            }),
            Writer::Sqlite(conn) => sqlite_set(conn, key, value.as_bytes()),
        }
    }

    fn incr(&self, key: &str, runtime: &tokio::runtime::Runtime) -> i64 {
        match self {
            Writer::Namestore(ns) => runtime.block_on(ns.incr(&key.to_owned(), 1)).unwrap(),
            Writer::Redb(db, durability) => {
                let mut next = 0;
                redb_write(db, *durability, |t| {
                    let current = t.get(key).unwrap().map_or(0, |v| {
                        std::str::from_utf8(v.value())
                            .unwrap()
                            .parse::<i64>()
                            .unwrap()
                    });
                    next = current + 1;
                    drop(t.insert(key, next.to_string().as_bytes()).unwrap());
                });
                next
            }
            Writer::Sqlite(conn) => conn
                .prepare_cached(
                    "INSERT INTO kv (key, value) VALUES (?1, '1') \
                     ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) \
                     RETURNING CAST(value AS INTEGER)",
                )
                .unwrap()
                .query_row(params![key], |row| row.get(0))
                .unwrap(),
        }
    }

    fn mset(&self, keys: &[String], value: &'static str, runtime: &tokio::runtime::Runtime) {
        match self {
            Writer::Namestore(ns) => runtime
                .block_on(ns.mset(keys.iter().map(|k| (k, value)), None))
                .unwrap(),
            Writer::Redb(db, durability) => redb_write(db, *durability, |t| {
                for key in keys {
                    drop(t.insert(key.as_str(), value.as_bytes()).unwrap());
                }
            }),
            Writer::Sqlite(conn) => {
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                for key in keys {
                    sqlite_set(conn, key, value.as_bytes());
                }
                conn.execute_batch("COMMIT").unwrap();
            }
        }
    }
}

fn stores(dir: &Path) -> Vec<(&'static str, Store)> {
    let file = |name: &str| {
        let path = dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        path
    };
    let namestore = |name: &str, durable: bool| {
        let mut config = RedbConfig::new(file(name));
        config.durable = durable;
        Store::Namestore(
            AnyDriver::new(RedbDriver::open(config).unwrap())
                .namespace("bench", "redb")
                .unwrap(),
        )
    };
    let redb = |name: &str, durability: Durability| {
        let db = Database::create(file(name)).unwrap();
        redb_write(&db, Durability::Immediate, |_| {});
        Store::Redb {
            db: Arc::new(db),
            durability,
        }
    };
    let sqlite = |name: &str, synchronous: &'static str| {
        let path = file(name);
        let conn = sqlite(&path, synchronous);
        Store::Sqlite {
            path,
            synchronous,
            conn: Mutex::new(conn),
        }
    };
    vec![
        ("namestore redb durable", namestore("durable.redb", true)),
        (
            "raw redb durable",
            redb("raw-durable.redb", Durability::Immediate),
        ),
        ("sqlite durable", sqlite("durable.sqlite", "FULL")),
        ("namestore redb fast", namestore("fast.redb", false)),
        ("raw redb fast", redb("raw-fast.redb", Durability::None)),
        ("sqlite fast", sqlite("fast.sqlite", "NORMAL")),
        (
            "namestore memory",
            Store::Namestore(
                AnyDriver::new(MemoryDriver::new())
                    .namespace("bench", "redb")
                    .unwrap(),
            ),
        ),
    ]
}

fn redb_vs_peers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(128)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("namestore-redb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let only = std::env::var("REDB_ONLY").unwrap_or_default();
    let keys: Vec<String> = (0..LIVE).map(|i| format!("key:{i}")).collect();
    let counters: Vec<String> = (0..LIVE).map(|i| format!("n:{i}")).collect();
    let mut group = c.benchmark_group("redb");
    for (name, store) in stores(&dir) {
        let writer = store.writer();
        writer.mset(&keys, VALUES[1], &runtime);
        // Writes so far, across the set rows (single and concurrent).
        let writes = Arc::new(AtomicUsize::new(0));
        let next_write = |writes: &AtomicUsize| {
            let n = writes.fetch_add(1, Ordering::Relaxed);
            (n % LIVE, VALUES[(n / LIVE) % 2])
        };
        let mut batches = 0;
        let (store, keys, counters, writer, runtime) =
            (&store, &keys, &counters, &writer, &runtime);
        let mut bench = |op: &str, run: &mut dyn FnMut(usize)| {
            let id = format!("{op}/{name}");
            if !id.contains(&only) {
                return;
            }
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        run(i);
                    }
                    start.elapsed()
                })
            });
        };
        bench("get", &mut |i| {
            assert!(store.get(&keys[i % LIVE], runtime).is_some());
        });
        bench("set", &mut |_| {
            let (key, value) = next_write(&writes);
            writer.set(&keys[key], value, runtime);
        });
        bench("incr", &mut |i| {
            writer.incr(&counters[i % LIVE], runtime);
        });
        bench("mset(10)", &mut |_| {
            let start = (batches * 10) % (LIVE - 10);
            writer.mset(&keys[start..start + 10], BATCH_VALUES[batches % 2], runtime);
            batches += 1;
        });
        // Write throughput: `writers` writers at once, time per write across all of them.
        // namestore's writers are tasks on the runtime; the peers' calls block, so each of
        // their writers is a thread with a writer (a connection for SQLite) of its own.
        for writers in WRITERS {
            let id = format!("set x{writers} writers/{name}");
            if !id.contains(&only) {
                continue;
            }
            let handles: Vec<Arc<Mutex<Writer>>> = (0..writers)
                .map(|_| Arc::new(Mutex::new(store.writer())))
                .collect();
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let per_writer = (iters as usize).div_ceil(writers).max(1);
                    let start = Instant::now();
                    runtime.block_on(async {
                        let tasks: Vec<_> = handles
                            .iter()
                            .map(|writer| {
                                let (keys, writes) = (keys.clone(), Arc::clone(&writes));
                                if let Store::Namestore(ns) = store {
                                    let ns = ns.clone();
                                    tokio::spawn(async move {
                                        for _ in 0..per_writer {
                                            let (key, value) = next_write(&writes);
                                            ns.set(&keys[key], value, None).await.unwrap();
                                        }
                                    })
                                } else {
                                    let writer = Arc::clone(writer);
                                    let handle = tokio::runtime::Handle::current();
                                    tokio::task::spawn_blocking(move || {
                                        let writer = writer.lock().unwrap();
                                        let _entered = handle.enter();
                                        for _ in 0..per_writer {
                                            let (key, value) = next_write(&writes);
                                            match &*writer {
                                                Writer::Redb(db, durability) => {
                                                    redb_write(db, *durability, |t| {
                                                        drop(
                                                            t.insert(
                                                                keys[key].as_str(),
                                                                value.as_bytes(),
                                                            )
                                                            .unwrap(),
                                                        )
                                                    })
                                                }
                                                Writer::Sqlite(conn) => {
                                                    sqlite_set(conn, &keys[key], value.as_bytes())
                                                }
                                                Writer::Namestore(_) => unreachable!(),
                                            }
                                        }
                                    })
                                }
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                    });
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_writer * writers) as f64)
                })
            });
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = redb_vs_peers
}
criterion_main!(benches);
