//! Hit ratios of the memory driver's eviction policies on real and synthetic workloads, beside
//! an exact LRU, ARC's published figures, moka, quick_cache and Belady's optimal, all in one
//! run (SPEC 10.6). Every cache is filled on a miss and every hit checks the value it returns.
//! Last, what a request costs a cache in use at sizes past the CPU's caches: namestore,
//! quick_cache and moka, each through its own thread-safe API, time per request side by side.
//!
//! Run: `cargo bench --bench eviction` (a few minutes; `EVICTION_QUICK=1` for one size per
//! workload). Reads the ARC paper's traces from `../shared/traces/`; prints a progress line
//! per workload and size, the tables as Markdown, and writes `target/eviction.csv` for the
//! plot (`python3 docs/plot_eviction.py`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use namestore::Namespace;
use namestore::drivers::memory::{Eviction, MemoryDriver, Policy};

#[path = "../tests/support/replay.rs"]
mod replay;

use replay::{
    Lru, Namestore, Replay, Rng, belady, hit_ratio, load_trace, scan_workload, shared_hit_ratios,
    zipf,
};

struct Moka(moka::sync::Cache<u64, u64>);

impl Replay for Moka {
    fn access(&mut self, key: u64) -> bool {
        match self.0.get(&key) {
            Some(value) => {
                assert_eq!(value, key);
                true
            }
            None => {
                self.0.insert(key, key);
                // Settle moka's eviction, so its size is the capacity at every access.
                self.0.run_pending_tasks();
                false
            }
        }
    }
}

struct QuickCache(quick_cache::unsync::Cache<u64, u64>);

impl Replay for QuickCache {
    fn access(&mut self, key: u64) -> bool {
        match self.0.get(&key) {
            Some(&value) => {
                assert_eq!(value, key);
                true
            }
            None => {
                self.0.insert(key, key);
                false
            }
        }
    }
}

/// The columns, in order.
const COLUMNS: [&str; 8] = [
    "S3-FIFO",
    "S3-FIFO 1 shard",
    "sampled LRU",
    "LRU",
    "ARC (published)",
    "moka",
    "quick_cache",
    "Belady",
];

struct Row {
    size: usize,
    ratios: [Option<f64>; 8],
}

fn measure(name: &str, accesses: &[u64], size: usize, arc: Option<f64>) -> Row {
    let started = Instant::now();
    let run = |cache: &mut dyn Replay| Some(hit_ratio(cache, accesses));
    let ratios = [
        run(&mut Namestore::new(size, Policy::S3Fifo, None)),
        run(&mut Namestore::new(size, Policy::S3Fifo, Some(1))),
        run(&mut Namestore::new(size, Policy::SampledLru, None)),
        run(&mut Lru::new(size)),
        arc,
        run(&mut Moka(
            moka::sync::Cache::builder()
                .max_capacity(size as u64)
                .build(),
        )),
        run(&mut QuickCache(quick_cache::unsync::Cache::new(size))),
        Some(belady(accesses, size)),
    ];
    eprintln!(
        "  {name} at {size}: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Row { size, ratios }
}

fn table(title: &str, rows: &[Row], out: &mut String, csv: &mut String) {
    writeln!(out, "\n### {title}\n").unwrap();
    writeln!(out, "| entries | {} |", COLUMNS.join(" | ")).unwrap();
    writeln!(out, "|---:|{}", "---:|".repeat(COLUMNS.len())).unwrap();
    for row in rows {
        let cells: Vec<String> = row
            .ratios
            .iter()
            .map(|r| r.map_or("".to_owned(), |r| format!("{:.2}%", r * 100.0)))
            .collect();
        writeln!(out, "| {} | {} |", row.size, cells.join(" | ")).unwrap();
        for (column, ratio) in COLUMNS.iter().zip(&row.ratios) {
            if let Some(ratio) = ratio {
                writeln!(csv, "{title},{column},{},{ratio:.6}", row.size).unwrap();
            }
        }
    }
    let mean = |i: usize| {
        let values: Vec<f64> = rows.iter().filter_map(|r| r.ratios[i]).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let means: Vec<String> = (0..COLUMNS.len())
        .map(|i| mean(i).map_or(String::new(), |m| format!("{:.2}%", m * 100.0)))
        .collect();
    writeln!(out, "| mean | {} |", means.join(" | ")).unwrap();
}

fn traces() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/traces");
    assert!(
        dir.join("OLTP.lis.zst").exists(),
        "the ARC traces are expected in {} (OLTP.lis.zst, P3.lis.zst)",
        dir.display()
    );
    dir
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is a filter we do not support.
    let quick = std::env::var_os("EVICTION_QUICK").is_some();
    let pick = |sizes: &[usize]| -> Vec<usize> {
        if quick {
            sizes[..1].to_vec()
        } else {
            sizes.to_vec()
        }
    };
    let mut out = String::new();
    let mut csv = String::from("workload,cache,entries,hit_ratio\n");
    let dir = traces();

    eprintln!("OLTP");
    let oltp = load_trace(&dir.join("OLTP.lis.zst"));
    let published = [
        (1_000, 0.3893),
        (2_000, 0.4608),
        (5_000, 0.5525),
        (10_000, 0.6187),
        (15_000, 0.6540),
    ];
    let rows: Vec<Row> = pick(&published.map(|(s, _)| s))
        .into_iter()
        .map(|size| {
            let arc = published.iter().find(|(s, _)| *s == size).map(|(_, r)| *r);
            measure("OLTP", &oltp, size, arc)
        })
        .collect();
    table("OLTP", &rows, &mut out, &mut csv);

    eprintln!("P3");
    let p3 = load_trace(&dir.join("P3.lis.zst"));
    let published = [(4_096, 0.0233), (16_384, 0.0700), (65_536, 0.2689)];
    let rows: Vec<Row> = pick(&published.map(|(s, _)| s))
        .into_iter()
        .map(|size| {
            let arc = published.iter().find(|(s, _)| *s == size).map(|(_, r)| *r);
            measure("P3", &p3, size, arc)
        })
        .collect();
    table("P3", &rows, &mut out, &mut csv);

    for alpha in [0.7, 0.9, 1.1] {
        let name = format!("Zipf {alpha}");
        eprintln!("{name}");
        let accesses = zipf(100_000, alpha, 1_000_000, 0x2f1e);
        let rows: Vec<Row> = pick(&[1_000, 10_000])
            .into_iter()
            .map(|size| measure(&name, &accesses, size, None))
            .collect();
        table(
            &format!("{name} (1M requests over 100k keys)"),
            &rows,
            &mut out,
            &mut csv,
        );
    }

    // Scan resistance: a hot set, a one-time sweep over 10x the cache, the hot set again.
    eprintln!("scan");
    let size = 1_000;
    let (accesses, start, end) = scan_workload(5_000, 200_000, 10 * size, 0x5ca7);
    writeln!(
        out,
        "\n### Scan resistance ({size} entries; hot Zipf 0.9 over 5,000 keys, a sweep of {} new keys in the middle)\n",
        10 * size
    )
    .unwrap();
    writeln!(
        out,
        "| cache | hot set before the sweep | hot set after the sweep |"
    )
    .unwrap();
    writeln!(out, "|---|---:|---:|").unwrap();
    let mut caches: Vec<(&str, Box<dyn Replay>)> = vec![
        (
            "S3-FIFO",
            Box::new(Namestore::new(size, Policy::S3Fifo, None)),
        ),
        (
            "sampled LRU",
            Box::new(Namestore::new(size, Policy::SampledLru, None)),
        ),
        ("LRU", Box::new(Lru::new(size))),
        (
            "moka",
            Box::new(Moka(
                moka::sync::Cache::builder()
                    .max_capacity(size as u64)
                    .build(),
            )),
        ),
        (
            "quick_cache",
            Box::new(QuickCache(quick_cache::unsync::Cache::new(size))),
        ),
    ];
    for (name, cache) in &mut caches {
        let before = hit_ratio(cache.as_mut(), &accesses[..start]);
        hit_ratio(cache.as_mut(), &accesses[start..end]);
        // The first 10% after the sweep shows how much of the hot set survived it.
        let after_end = end + (accesses.len() - end) / 10;
        let after = hit_ratio(cache.as_mut(), &accesses[end..after_end]);
        writeln!(
            out,
            "| {name} | {:.2}% | {:.2}% |",
            before * 100.0,
            after * 100.0
        )
        .unwrap();
    }

    // Namespaces sharing a budget: two streams, each in its own namespace, against the same
    // two in one namespace of the same store.
    eprintln!("two namespaces");
    writeln!(
        out,
        "\n### Two namespaces sharing a budget (two Zipf streams of 500k requests over 100k keys each, in turn; S3-FIFO)\n"
    )
    .unwrap();
    writeln!(
        out,
        "| streams | entries | each in its own namespace | both in one namespace |"
    )
    .unwrap();
    writeln!(out, "|---|---:|---:|---:|").unwrap();
    for (first, second) in [(0.9, 0.9), (0.7, 1.1)] {
        let streams = [
            zipf(100_000, first, 500_000, 0x51),
            zipf(100_000, second, 500_000, 0x52),
        ];
        for size in pick(&[2_000, 20_000]) {
            let started = Instant::now();
            let own = shared_hit_ratios(size, true, &streams);
            let one = shared_hit_ratios(size, false, &streams);
            eprintln!(
                "  Zipf {first} and {second} at {size}: done in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            let pair = |r: &[f64]| format!("{:.2}% / {:.2}%", r[0] * 100.0, r[1] * 100.0);
            writeln!(
                out,
                "| Zipf {first} and {second} | {size} | {} | {} |",
                pair(&own),
                pair(&one)
            )
            .unwrap();
        }
    }

    in_use(&pick(&[10_000, 100_000]), &mut out);

    println!("{out}");
    let csv_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/eviction.csv");
    std::fs::write(&csv_path, csv).unwrap();
    eprintln!("wrote {}", csv_path.display());
}

/// A thread-safe cache used as caches are, through its own API: each request a `get` of the
/// key, and on a miss a `set` of it (an owned `String` for the caches whose API takes one, as
/// their callers pass it). Whether the request hit; a hit checks the value it returns.
trait InUse {
    // A `String`, not a `str`: namestore's `String`-keyed namespace takes the key as it is.
    #[allow(clippy::ptr_arg)]
    fn request(&self, key: &String, value: &Bytes) -> bool;
}

impl InUse for Namespace<String, MemoryDriver> {
    fn request(&self, key: &String, value: &Bytes) -> bool {
        let found = self.get(key).now_or_never().expect("ready at once");
        if let Some(found) = found.unwrap() {
            assert_eq!(&found, value);
            return true;
        }
        let set = self.set(key, value.clone(), None).now_or_never();
        set.expect("ready at once").unwrap();
        false
    }
}

impl InUse for quick_cache::sync::Cache<String, Bytes> {
    fn request(&self, key: &String, value: &Bytes) -> bool {
        if let Some(found) = self.get(key.as_str()) {
            assert_eq!(&found, value);
            return true;
        }
        self.insert(key.clone(), value.clone());
        false
    }
}

impl InUse for moka::sync::Cache<String, Bytes> {
    fn request(&self, key: &String, value: &Bytes) -> bool {
        if let Some(found) = self.get(key) {
            assert_eq!(&found, value);
            return true;
        }
        self.insert(key.clone(), value.clone());
        false
    }
}

/// Rounds of requests each cache serves in a timed run, and requests a round.
const IN_USE_ROUNDS: usize = 21;
const IN_USE_REQUESTS: usize = 50_000;

/// Time per request of a cache in use, at sizes past the CPU's caches: Zipf 0.9 requests over
/// ten times as many keys as the cache holds (keys of 21 bytes, in a shuffled order in
/// memory), each cache first run once through the whole stream, then timed in rounds that
/// take turns (which cache goes first rotates, so the machine's drift falls on each alike);
/// printed are the median time per request over rounds and the hit ratio of the timed
/// requests.
fn in_use(sizes: &[usize], out: &mut String) {
    writeln!(
        out,
        "\n### A cache in use: time per request (one thread; a `get`, and a `set` on a miss; Zipf 0.9 over 10× the cache's keys)\n"
    )
    .unwrap();
    writeln!(
        out,
        "| entries | namestore (S3-FIFO) | quick_cache | moka |"
    )
    .unwrap();
    writeln!(out, "|---:|---:|---:|---:|").unwrap();
    for &size in sizes {
        let started = Instant::now();
        let mut rng = Rng(0x1f5e ^ size as u64);
        let mut keys: Vec<String> = (0..10 * size)
            .map(|_| format!("user:{:016x}", rng.next()))
            .collect();
        for i in (1..keys.len()).rev() {
            keys.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let stream = zipf(keys.len(), 0.9, 2_000_000, 0x1a5e);
        let value = Bytes::from_static(b"value-0123456789");
        let ours = MemoryDriver::builder()
            .max_entries(size as u64)
            .eviction(Eviction::Any)
            .reap_interval(None)
            .build()
            .unwrap()
            .namespace::<String>("bench", "in-use")
            .unwrap();
        let quick = quick_cache::sync::Cache::<String, Bytes>::new(size);
        let moka = moka::sync::Cache::<String, Bytes>::new(size as u64);
        let caches: [&dyn InUse; 3] = [&ours, &quick, &moka];
        for cache in caches {
            for &r in &stream {
                cache.request(&keys[r as usize], &value);
            }
        }
        let mut times = [(); 3].map(|()| Vec::with_capacity(IN_USE_ROUNDS));
        let mut hits = [0usize; 3];
        let mut next = [0usize; 3];
        for round in 0..IN_USE_ROUNDS {
            for turn in 0..3 {
                let which = (round + turn) % 3;
                let start = Instant::now();
                for _ in 0..IN_USE_REQUESTS {
                    let r = stream[next[which] % stream.len()] as usize;
                    next[which] += 1;
                    hits[which] += usize::from(caches[which].request(&keys[r], &value));
                }
                times[which].push(start.elapsed().as_nanos() as f64 / IN_USE_REQUESTS as f64);
            }
        }
        let cells: Vec<String> = (0..3)
            .map(|i| {
                times[i].sort_by(f64::total_cmp);
                let ratio = hits[i] as f64 / (IN_USE_ROUNDS * IN_USE_REQUESTS) as f64;
                format!(
                    "{:.0} ns ({:.2}%)",
                    times[i][IN_USE_ROUNDS / 2],
                    ratio * 100.0
                )
            })
            .collect();
        writeln!(out, "| {size} | {} |", cells.join(" | ")).unwrap();
        eprintln!(
            "  a cache in use at {size}: done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}
