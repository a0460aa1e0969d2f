//! Model-based property test of a memory store with a budget (SPEC 10): the same random
//! operations as `model.rs`, on a store capped at a few entries, in each eviction mode and
//! with each policy. The model is SPEC 1-9's, and it allows a key to vanish only where SPEC 10
//! does: never in a `never` namespace, never a key without a TTL in a `with-ttl` one, never a
//! live key while an expired one still holds memory; and it expects a write to be refused
//! (out of memory, nothing changed) exactly when even evicting every key it may evict would not
//! make room.

use std::collections::BTreeSet;
use std::time::Duration;

use namestore::Namespace;
use namestore::drivers::memory::{Eviction, ManualClock, MemoryDriver, Policy};
use proptest::prelude::*;

#[path = "support/model.rs"]
mod model;

use model::{Answer, KEYS, Model, Op, op, ready, run};

/// Keys `op` would add to the store (not there now, live).
fn new_keys(model: &Model, op: &Op) -> BTreeSet<String> {
    let missing = |i: &usize| (!model.map.contains_key(KEYS[*i])).then(|| KEYS[*i].to_owned());
    match op {
        Op::Set(k, ..) | Op::SetKeepTtl(k, _) | Op::SetNx(k, ..) | Op::GetSet(k, ..) => {
            missing(k).into_iter().collect()
        }
        Op::Incr(k, _) | Op::IncrWithTtl(k, ..) => missing(k).into_iter().collect(),
        Op::Decr(k, d) if d.checked_neg().is_some() => missing(k).into_iter().collect(),
        Op::Mset(pairs, _) => pairs.iter().filter_map(|(k, _)| missing(k)).collect(),
        _ => BTreeSet::new(),
    }
}

/// Keys `op` writes: they are not evicted to make room for it.
fn written(op: &Op) -> BTreeSet<String> {
    match op {
        Op::Set(k, ..)
        | Op::SetKeepTtl(k, _)
        | Op::SetNx(k, ..)
        | Op::GetSet(k, ..)
        | Op::Incr(k, _)
        | Op::IncrWithTtl(k, ..)
        | Op::Decr(k, _)
        | Op::Cas(k, ..)
        | Op::Replace(k, ..) => [KEYS[*k].to_owned()].into(),
        Op::Mset(pairs, _) => pairs.iter().map(|(k, _)| KEYS[*k].to_owned()).collect(),
        _ => BTreeSet::new(),
    }
}

fn may_evict(mode: Eviction, deadline: Option<u64>) -> bool {
    match mode {
        Eviction::Never => false,
        Eviction::Any => true,
        Eviction::WithTtl => deadline.is_some(),
    }
}

/// The model's answer, or "out of memory" when the store is full and eviction may not make
/// room for what `op` adds.
fn expect(model: &mut Model, op: &Op, mode: Eviction, cap: usize) -> Answer {
    model.purge();
    let adds = new_keys(model, op).len();
    let free = cap.saturating_sub(model.map.len());
    if adds > free {
        let spared = written(op);
        let evictable = model
            .map
            .iter()
            .filter(|(key, (_, deadline))| !spared.contains(*key) && may_evict(mode, *deadline))
            .count();
        if adds - free > evictable {
            return Answer::Error("out of memory");
        }
    }
    model.apply(op)
}

/// Takes the keys the store evicted out of the model, checking SPEC 10's rules.
fn reconcile(
    model: &mut Model,
    ns: &Namespace<String, MemoryDriver>,
    mode: Eviction,
    step: usize,
) -> Result<(), TestCaseError> {
    model.purge();
    let mut evicted = 0;
    for key in KEYS {
        let there = ready(ns.exists(&(*key).to_owned())).unwrap();
        match (model.map.get(*key), there) {
            (Some(&(_, deadline)), false) => {
                prop_assert!(
                    may_evict(mode, deadline),
                    "step {step}: {key} was evicted from a `{mode}` namespace (deadline {deadline:?})"
                );
                model.map.remove(*key);
                evicted += 1;
            }
            (None, true) => prop_assert!(
                false,
                "step {step}: {key} is in the store, not in the model"
            ),
            _ => {}
        }
    }
    if evicted > 0 {
        // Expired entries go first: none may still hold memory after a live key was evicted.
        prop_assert_eq!(
            ns.driver().stored_entries(),
            model.map.len(),
            "step {}: a live key was evicted while an expired one was still stored",
            step
        );
    }
    Ok(())
}

fn mode(i: u32) -> Eviction {
    [Eviction::Never, Eviction::Any, Eviction::WithTtl][i as usize]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_store_with_a_budget_agrees_with_the_model(
        ops in prop::collection::vec(op(), 1..120),
        eviction in 0u32..3,
        lru in any::<bool>(),
        cap in 1usize..5,
        shards in 0u32..3,
    ) {
        let eviction = mode(eviction);
        let clock = ManualClock::new();
        let driver = MemoryDriver::builder()
            .manual_clock(clock.clone())
            .shards(1 << shards)
            .max_entries(cap as u64)
            .eviction(eviction)
            .policy(if lru { Policy::SampledLru } else { Policy::S3Fifo })
            // Rounds as often as the reclaimer's thread turns, so that they race the
            // operations (`Reclaim` among them) rather than fall between them.
            .reap_interval(Some(Duration::from_micros(1)))
            .build()
            .unwrap();
        let ns = driver.namespace::<String>("model", "budget").unwrap();
        let mut model = Model::default();
        for (step, op) in ops.iter().enumerate() {
            let expected = expect(&mut model, op, eviction, cap);
            let actual = run(&ns, &clock, op);
            prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);
            reconcile(&mut model, &ns, eviction, step)?;
            prop_assert!(driver.usage().unwrap().entries <= cap as u64, "step {}: over the cap", step);
        }
    }
}
