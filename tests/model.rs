//! Model-based property test: random sequences of every operation, with time advancing, run
//! against the memory driver and a plain `BTreeMap` model; every answer must agree.

use std::time::Duration;

use namestore::MemoryDriver;
use namestore::drivers::memory::ManualClock;
use proptest::prelude::*;

#[path = "support/model.rs"]
mod model;

use model::{Model, op, run};

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn memory_driver_agrees_with_the_model(
        ops in prop::collection::vec(op(), 1..120),
        // Batches find their shards in a bit set up to 64 shards, by a sort above.
        shards in prop::sample::select(vec![1usize, 2, 4, 8, 128]),
    ) {
        let clock = ManualClock::new();
        let driver = MemoryDriver::builder()
            .manual_clock(clock.clone())
            .shards(shards)
            .reap_interval(Some(Duration::from_millis(1)))
            .build()
            .unwrap();
        let ns = driver.namespace::<String>("model", "ns").unwrap();
        let mut model = Model::default();
        for (step, op) in ops.iter().enumerate() {
            let expected = model.apply(op);
            let actual = run(&ns, &clock, op);
            prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);
        }
    }
}
