//! The model-based test on the drivers that keep their data out of the process (redb, Redis,
//! Redis Cluster): the same random operations as `model.rs`, on hostile keys, values and
//! patterns, and every answer the model's. Their clocks are real, so time does not advance
//! within a sequence: each model millisecond of a TTL is ten seconds, far past a sequence's
//! run, and a TTL's answer is compared by kind (missing, no expiry, expiring) and bound.
#![cfg(all(feature = "redis", feature = "redb"))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use namestore::drivers::redb::{RedbConfig, RedbDriver};
use namestore::drivers::redis::RedisDriver;
use namestore::{Driver, KeyTtl, Namespace};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

#[path = "support/model.rs"]
mod model;
mod support;

use model::{Answer, Model, Op, answer, op};

/// What a model millisecond of a TTL is on these drivers.
const UNIT: Duration = Duration::from_secs(10);

/// Runs `ops` in a namespace of `driver` of its own, beside the model.
fn agrees<D: Driver>(
    runtime: &tokio::runtime::Runtime,
    driver: &D,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let domain = format!("case{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let ns = Namespace::<String, D>::new(driver.clone(), "model", &domain).unwrap();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let actual = runtime.block_on(answer(&ns, op, UNIT));
        match (&actual, &expected) {
            // Time ran between the write and the question: at most the TTL set, and not
            // less by more than the sequence can have taken.
            (Answer::Ttl(KeyTtl::ExpiresIn(left)), Answer::Ttl(KeyTtl::ExpiresIn(model))) => {
                let set = UNIT * u32::try_from(model.as_millis()).unwrap();
                prop_assert!(
                    *left <= set && *left + Duration::from_secs(60) > set,
                    "step {}: {:?}: {:?} left of {:?}",
                    step,
                    op,
                    left,
                    set
                );
            }
            _ => prop_assert_eq!(actual, expected, "step {}: {:?}", step, op),
        }
    }
    Ok(())
}

/// Sequences without the memory driver's clock steps, which these drivers cannot take.
fn sequences() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        op().prop_filter("a memory-clock step", |op| {
            !matches!(op, Op::Advance(_) | Op::Reclaim)
        }),
        1..100,
    )
}

fn check<D: Driver>(driver: D) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    });
    runner
        .run(&sequences(), |ops| agrees(&runtime, &driver, &ops))
        .unwrap();
}

#[test]
fn redb_agrees_with_the_model() {
    let mut config = RedbConfig::new(support::scratch_dir("redb").join("model.redb"));
    config.durable = false;
    check(RedbDriver::open(config).unwrap());
}

#[test]
fn redis_agrees_with_the_model() {
    let url = support::start_server(support::free_port(), "");
    check(RedisDriver::from_url(&url).unwrap());
}

#[test]
fn redis_cluster_agrees_with_the_model() {
    check(RedisDriver::from_url(&support::start_cluster()).unwrap());
}
