//! Damaged files never panic a caller (SPEC 8.2): 200 damaged copies of a real namestore file
//! (4 KiB pages zeroed, bytes flipped, the file cut short), each opened and put through every
//! operation. Every call answers `Ok` or `Err`; a file redb cannot read is
//! `ErrorKind::Corrupted` or another error, and `RedbDriver::check` reports on it without
//! panicking either.
//!
//! redb's own panics on such files are caught inside the driver; the panic hook installed
//! here counts them instead of printing each one (this binary holds this test only).
#![cfg(feature = "redb")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt;
use namestore::drivers::redb::{RedbConfig, RedbDriver};
use namestore::{Driver, ErrorKind};

static PANICS: AtomicUsize = AtomicUsize::new(0);

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("namestore-damage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real file: several namespaces, counters, TTLs, a large value, deletions.
async fn original(path: &Path) {
    let store = RedbDriver::open(RedbConfig::new(path)).unwrap();
    for domain in ["users", "sessions", "counters"] {
        let ns = store.namespace::<String>("app", domain).unwrap();
        ns.mset(
            (0..300).map(|i| (format!("{domain}-{i}"), format!("value {i} of {domain}"))),
            None,
        )
        .await
        .unwrap();
        for i in 0..50 {
            ns.set(
                &format!("ttl-{i}"),
                "x",
                Some(Duration::from_secs(3600 + i)),
            )
            .await
            .unwrap();
            ns.incr(&format!("count-{i}"), i as i64).await.unwrap();
        }
        ns.mdel((0..300).step_by(7).map(|i| format!("{domain}-{i}")))
            .await
            .unwrap();
    }
    let big = store.namespace::<String>("app", "big").unwrap();
    big.set(&"blob".to_owned(), vec![0xabu8; 200_000], None)
        .await
        .unwrap();
}

fn damage(original: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut bytes = original.to_vec();
    let pages = (bytes.len() / 4096).max(1) as u64;
    match rng.below(3) {
        0 => {
            let count = 1 + rng.below(3);
            let mut zeroed = Vec::new();
            for _ in 0..count {
                let page = rng.below(pages) as usize;
                let end = ((page + 1) * 4096).min(bytes.len());
                bytes[page * 4096..end].fill(0);
                zeroed.push(page);
            }
            (bytes, format!("pages {zeroed:?} zeroed"))
        }
        1 => {
            let count = 1 + rng.below(16);
            for _ in 0..count {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            (bytes, format!("{count} bits flipped"))
        }
        _ => {
            let len = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(len);
            (bytes, format!("cut to {len} bytes"))
        }
    }
}

/// Every operation once; returns how many failed with `Corrupted`.
async fn every_operation(store: &RedbDriver) -> usize {
    let mut corrupted = 0;
    let mut count = |result: Result<(), namestore::Error>| {
        if let Err(e) = result
            && e.kind() == ErrorKind::Corrupted
        {
            corrupted += 1;
        }
    };
    for domain in ["users", "sessions", "counters", "big", "new"] {
        let ns = store.namespace::<String>("app", domain).unwrap();
        let key = format!("{domain}-1");
        count(ns.get(&key).await.map(drop));
        count(ns.exists(&key).await.map(drop));
        count(ns.ttl(&"ttl-3".to_owned()).await.map(drop));
        count(ns.set(&key, "new", None).await);
        count(ns.set_nx(&"fresh".to_owned(), "v", None).await.map(drop));
        count(ns.incr(&"count-3".to_owned(), 1).await.map(drop));
        count(ns.get_set(&key, "swap", None).await.map(drop));
        count(ns.cas(&key, "swap", "cas", None).await.map(drop));
        count(ns.cad(&key, "cas").await.map(drop));
        count(
            ns.expire(&"ttl-4".to_owned(), Duration::from_secs(5))
                .await
                .map(drop),
        );
        count(ns.persist(&"ttl-5".to_owned()).await.map(drop));
        count(ns.delete(&format!("{domain}-2")).await.map(drop));
        count(
            ns.mget((0..20).map(|i| format!("{domain}-{i}")))
                .await
                .map(drop),
        );
        count(
            ns.mset((0..20).map(|i| (format!("m-{i}"), "v")), None)
                .await,
        );
        count(ns.mdel((0..20).map(|i| format!("m-{i}"))).await.map(drop));
        count(ns.keys("*").await.map(drop));
        count(ns.clear().await.map(drop));
    }
    let listed: Result<Vec<_>, _> = store.namespaces().try_collect().await;
    count(listed.map(drop));
    corrupted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_never_panic_a_caller() {
    // Count redb's panics; print this test's own.
    std::panic::set_hook(Box::new(|info| {
        let own = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("round "));
        if own {
            eprintln!("{info}");
        } else {
            PANICS.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let dir = dir();
    let source = dir.join("original.redb");
    original(&source).await;
    let pristine = std::fs::read(&source).unwrap();
    // A new sample of damage each run; `NAMESTORE_DAMAGE_SEED` replays one (it is printed).
    let seed = std::env::var("NAMESTORE_DAMAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::from(std::process::id()) << 20 | 0x9e37);
    println!("damage seed {seed}");
    let mut rng = Rng(seed);
    let (mut opened, mut refused, mut corrupted_calls) = (0, 0, 0);
    for round in 0..200 {
        let (bytes, what) = damage(&pristine, &mut rng);
        if std::env::var_os("NAMESTORE_DAMAGE_VERBOSE").is_some() {
            eprintln!("round {round}: {what}");
        }
        let path = dir.join(format!("damaged-{round}.redb"));
        std::fs::write(&path, &bytes).unwrap();
        let mut config = RedbConfig::new(&path);
        config.reap_interval = Some(Duration::from_millis(5));
        // Any panic reaching this task fails the test, with the damage that caused it.
        let outcome = tokio::spawn(async move {
            match RedbDriver::open(config) {
                Ok(store) => {
                    // Let the reclaimer run over the damaged expiry index too.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(every_operation(&store).await)
                }
                Err(error) => Err(error),
            }
        })
        .await;
        match outcome {
            Ok(Ok(corrupted)) => {
                opened += 1;
                corrupted_calls += corrupted;
            }
            Ok(Err(_)) => refused += 1,
            Err(panic) => panic!("round {round} ({what}): a call panicked: {panic}"),
        }
        // The way out never panics either.
        let checked = std::panic::catch_unwind(|| RedbDriver::check(&path));
        assert!(
            checked.is_ok(),
            "round {round} ({what}): RedbDriver::check panicked"
        );
        std::fs::remove_file(&path).unwrap();
    }
    println!(
        "200 damaged files: {opened} opened and used ({corrupted_calls} calls answered Corrupted), \
         {refused} refused at open; {} panics inside redb contained",
        PANICS.load(Ordering::SeqCst)
    );
    let _ = std::panic::take_hook();
    std::fs::remove_dir_all(&dir).ok();
}
