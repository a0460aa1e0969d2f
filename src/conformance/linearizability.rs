//! SPEC 3.2 and 7.1 together: single-key histories with expiry, recorded from several tasks
//! and checked for linearizability against a model that knows time.
//!
//! A Wing–Gong style search (with Lowe's memoisation) looks for an order of the recorded
//! operations that respects real time (an operation that ended before another began comes
//! first) and in which every answer is the model's answer. The model is a key whose TTL runs
//! out: an operation happens at an instant within its call, and a key written at instant `p`
//! with TTL `t` expires at `p + t`. The instants are not known, only the intervals the calls
//! took, so the model carries each deadline as the range it can lie in and the earliest
//! instant the next operation can happen at; an answer is accepted when some choice of
//! instants explains it. Once an operation has seen the key expired, every later one must
//! too, unless a write stored it again: that is the rule a resurrection breaks.

use std::collections::HashSet;
use std::time::Duration;

use super::Harness;
use crate::{Driver, KeyTtl};

/// One operation on the key, as issued.
#[derive(Clone, Copy, Debug)]
enum Op {
    Set { value: i64, ttl: Option<i64> },
    Get,
    Expire { ttl: i64 },
    Persist,
    Incr { delta: i64, ttl: Option<i64> },
    Ttl,
}

/// What the store answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Done,
    Value(Option<i64>),
    Flag(bool),
    Count(i64),
    Left(KeyTtl),
}

#[derive(Clone, Copy, Debug)]
struct Call {
    op: Op,
    answer: Answer,
    /// Real-time nanoseconds at which the call started and returned: they order the calls.
    invoked: i64,
    returned: i64,
    /// The driver's clock (nanoseconds) when the call started and returned: expiry follows
    /// it. The same as the real times on a real clock; a manual clock moves in steps.
    clock_from: i64,
    clock_to: i64,
    task: usize,
}

/// When the key expires: never, or at an instant somewhere in `lo..=hi` (nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Deadline {
    Never,
    Within { lo: i64, hi: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Model {
    /// The key's value and deadline, or `None` when missing.
    key: Option<(i64, Deadline)>,
    /// The earliest instant the next operation can take effect at.
    not_before: i64,
}

/// Every model state the call can leave behind, given its answer; empty when no choice of
/// instant explains the answer. `slack` widens each deadline for a store clock that counts
/// whole milliseconds.
fn step(model: Model, call: &Call, slack: i64) -> Vec<Model> {
    let earliest = model.not_before.max(call.clock_from);
    let latest = call.clock_to;
    if earliest > latest {
        return Vec::new();
    }
    // A TTL counts from some instant of the call, not necessarily the one at which the call
    // takes effect: a store may read its clock when it decides and make the write visible a
    // little later (a commit). TTLs are in milliseconds, instants in nanoseconds.
    let deadline = |ttl: Option<i64>| match ttl.map(|ms| ms * 1_000_000) {
        None => Deadline::Never,
        Some(ttl) => Deadline::Within {
            lo: call.clock_from + ttl - slack,
            hi: latest + ttl + slack,
        },
    };
    // The instants the call can take effect at, split by whether the key is live there:
    // (instant, the key as the call sees it).
    let mut views: Vec<(i64, Option<(i64, Deadline)>)> = Vec::new();
    match model.key {
        None => views.push((earliest, None)),
        Some((value, Deadline::Never)) => views.push((earliest, Some((value, Deadline::Never)))),
        Some((value, Deadline::Within { lo, hi })) => {
            if earliest < hi {
                views.push((earliest, Some((value, Deadline::Within { lo, hi }))));
            }
            if latest >= lo {
                views.push((earliest.max(lo), None));
            }
        }
    }
    let mut next = Vec::new();
    for (at, key) in views {
        let after = |key| Model {
            key,
            not_before: at,
        };
        let outcome = match (call.op, key) {
            (Op::Set { value, ttl }, _) => {
                (call.answer == Answer::Done).then(|| after(Some((value, deadline(ttl)))))
            }
            (Op::Get, key) => {
                (call.answer == Answer::Value(key.map(|(v, _)| v))).then(|| after(key))
            }
            (Op::Expire { ttl }, Some((value, _))) => (call.answer == Answer::Flag(true))
                .then(|| after(Some((value, deadline(Some(ttl)))))),
            (Op::Expire { .. } | Op::Persist, None) => {
                (call.answer == Answer::Flag(false)).then(|| after(None))
            }
            (Op::Persist, Some((value, deadline))) => {
                let had_ttl = deadline != Deadline::Never;
                (call.answer == Answer::Flag(had_ttl))
                    .then(|| after(Some((value, Deadline::Never))))
            }
            (Op::Incr { delta, .. }, Some((value, deadline))) => (call.answer
                == Answer::Count(value + delta))
            .then(|| after(Some((value + delta, deadline)))),
            (Op::Incr { delta, ttl }, None) => {
                (call.answer == Answer::Count(delta)).then(|| after(Some((delta, deadline(ttl)))))
            }
            (Op::Ttl, None) => (call.answer == Answer::Left(KeyTtl::Missing)).then(|| after(None)),
            (Op::Ttl, Some((value, Deadline::Never))) => (call.answer
                == Answer::Left(KeyTtl::NoExpiry))
            .then(|| after(Some((value, Deadline::Never)))),
            (Op::Ttl, Some((value, Deadline::Within { lo, hi }))) => match call.answer {
                // Time left `left` at instant `p` means a deadline near `p + left`; some
                // instant of the call must fit a deadline in range.
                Answer::Left(KeyTtl::ExpiresIn(left)) => {
                    let left = i64::try_from(left.as_nanos()).unwrap_or(i64::MAX);
                    let ms = 1_000_000;
                    let fits = lo - left - ms - slack <= latest && hi - left + ms + slack >= at;
                    fits.then(|| after(Some((value, Deadline::Within { lo, hi }))))
                }
                _ => None,
            },
        };
        next.extend(outcome);
    }
    next
}

/// Whether the calls have a linearization; on failure, the longest prefix found.
fn linearizable(calls: &[Call], slack: i64) -> Result<(), usize> {
    assert!(calls.len() <= 128, "a history holds at most 128 calls");
    let mut seen: HashSet<(u128, Model)> = HashSet::new();
    let mut deepest = 0;
    // Depth-first, with an explicit stack of (calls taken, model).
    let start = Model {
        key: None,
        not_before: i64::MIN,
    };
    let mut stack = vec![(0u128, start)];
    let all = if calls.len() == 128 {
        u128::MAX
    } else {
        (1u128 << calls.len()) - 1
    };
    while let Some((taken, model)) = stack.pop() {
        if taken == all {
            return Ok(());
        }
        if !seen.insert((taken, model)) {
            continue;
        }
        deepest = deepest.max(taken.count_ones() as usize);
        // A call may come next only if no pending call returned before it was invoked.
        let first_return = (0..calls.len())
            .filter(|i| taken & (1 << i) == 0)
            .map(|i| calls[i].returned)
            .min()
            .unwrap_or(i64::MAX);
        for (i, call) in calls.iter().enumerate() {
            if taken & (1 << i) != 0 || call.invoked > first_return {
                continue;
            }
            for next in step(model, call, slack) {
                stack.push((taken | (1 << i), next));
            }
        }
    }
    Err(deepest)
}

/// A small xorshift generator: the suite needs varied operations, not good randomness.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// SPEC 3.2, 7.1: single-key histories of `set` (short TTLs or none), `get`, `expire`,
/// `persist`, `incr` (with a TTL on creation or not) and `ttl`, issued by four tasks at once
/// while the key's TTLs run out, are linearizable: some order of the calls, each taking
/// effect at an instant within its call, explains every answer, with expiry happening at the
/// deadline. In particular no key that a read saw expired is seen again unless rewritten.
pub async fn linearizable_with_expiry<D: Driver>(h: &Harness<D>) {
    const TASKS: usize = 4;
    const CALLS_PER_TASK: usize = 9;
    const HISTORIES: usize = 40;
    let ns = h.namespace::<String>();
    let slack = i64::try_from(h.clock_slack().as_nanos()).unwrap_or(0);
    // TTLs in milliseconds: short enough to run out during a history.
    let ttls: &[i64] = if h.is_manual() {
        &[1, 2, 3, 5]
    } else {
        &[2, 4, 8, 15]
    };
    let seed = u64::from(std::process::id()) ^ h.elapsed().as_nanos() as u64 | 1;
    for history in 0..HISTORIES {
        let key = format!("h{history}");
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS + 1));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (ns, key, start, h_clock, epoch) = (
                ns.clone(),
                key.clone(),
                std::sync::Arc::clone(&start),
                h.clock(),
                h.epoch(),
            );
            let real = move || i64::try_from(epoch.elapsed().as_nanos()).unwrap_or(i64::MAX);
            let mut rng = Rng(seed.wrapping_mul(31 + history as u64 * 7 + task as u64) | 1);
            let ttls = ttls.to_vec();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let mut calls = Vec::new();
                for n in 0..CALLS_PER_TASK {
                    let ttl_ms = ttls[rng.below(ttls.len() as u64) as usize];
                    let ttl = |ms: i64| Duration::from_millis(ms as u64);
                    let op = match rng.below(10) {
                        0 | 1 => Op::Set {
                            value: (task * 1000 + n) as i64 * 1000,
                            ttl: (rng.below(4) != 0).then_some(ttl_ms),
                        },
                        2..=4 => Op::Get,
                        5 => Op::Expire { ttl: ttl_ms },
                        6 => Op::Persist,
                        7 | 8 => Op::Incr {
                            delta: 1 + rng.below(3) as i64,
                            ttl: (rng.below(2) == 0).then_some(ttl_ms),
                        },
                        _ => Op::Ttl,
                    };
                    let (invoked, clock_from) = (real(), h_clock());
                    let answer = match op {
                        Op::Set { value, ttl: t } => {
                            ns.set(&key, value.to_string(), t.map(ttl)).await.unwrap();
                            Answer::Done
                        }
                        Op::Get => Answer::Value(ns.get(&key).await.unwrap().map(|v| {
                            std::str::from_utf8(&v)
                                .ok()
                                .and_then(|v| v.parse().ok())
                                .expect("the key holds only numbers")
                        })),
                        Op::Expire { ttl: t } => {
                            Answer::Flag(ns.expire(&key, ttl(t)).await.unwrap())
                        }
                        Op::Persist => Answer::Flag(ns.persist(&key).await.unwrap()),
                        Op::Incr { delta, ttl: None } => {
                            Answer::Count(ns.incr(&key, delta).await.unwrap())
                        }
                        Op::Incr {
                            delta,
                            ttl: Some(t),
                        } => Answer::Count(ns.incr_with_ttl(&key, delta, ttl(t)).await.unwrap()),
                        Op::Ttl => Answer::Left(ns.ttl(&key).await.unwrap()),
                    };
                    let (clock_to, returned) = (h_clock(), real());
                    calls.push(Call {
                        op,
                        answer,
                        invoked,
                        returned,
                        clock_from,
                        clock_to,
                        task,
                    });
                    if rng.below(3) == 0 {
                        tokio::time::sleep(Duration::from_micros(200 + rng.below(2000))).await;
                    }
                }
                calls
            }));
        }
        // On a manual clock, time moves in steps while the tasks run.
        let ticker = h.manual_clock().map(|clock| {
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                for _ in 0..40 {
                    clock.advance(Duration::from_micros(250));
                    tokio::task::yield_now().await;
                }
            })
        });
        if ticker.is_none() {
            start.wait().await;
        }
        let mut calls = Vec::new();
        for task in tasks {
            calls.extend(task.await.expect("a task panicked"));
        }
        if let Some(ticker) = ticker {
            ticker.await.expect("the clock task panicked");
        }
        calls.sort_by_key(|c| (c.invoked, c.returned));
        if let Err(deepest) = linearizable(&calls, slack) {
            let shown: Vec<String> = calls
                .iter()
                .map(|c| {
                    format!(
                        "  task {} [{:.3}, {:.3}] ms (clock [{:.3}, {:.3}]) {:?} -> {:?}",
                        c.task,
                        c.invoked as f64 / 1e6,
                        c.returned as f64 / 1e6,
                        c.clock_from as f64 / 1e6,
                        c.clock_to as f64 / 1e6,
                        c.op,
                        c.answer
                    )
                })
                .collect();
            panic!(
                "history {history} of key {key:?} is not linearizable (longest explained prefix: {deepest} of {} calls):\n{}",
                calls.len(),
                shown.join("\n")
            );
        }
        ns.delete(&key).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: Op, answer: Answer, invoked: i64, returned: i64) -> Call {
        Call {
            op,
            answer,
            invoked,
            returned,
            clock_from: invoked,
            clock_to: returned,
            task: 0,
        }
    }

    const MS: i64 = 1_000_000;

    #[test]
    fn a_resurrection_is_caught() {
        // set with a 20 ms TTL; a read at 22 ms sees it expired; an `expire` that took
        // effect before the deadline cannot explain a later read seeing it again.
        let history = [
            call(
                Op::Set {
                    value: 1,
                    ttl: Some(20),
                },
                Answer::Done,
                0,
                MS,
            ),
            call(
                Op::Expire { ttl: 60_000 },
                Answer::Flag(true),
                18 * MS,
                25 * MS,
            ),
            call(Op::Get, Answer::Value(None), 22 * MS, 22 * MS + 1000),
            call(Op::Get, Answer::Value(Some(1)), 23 * MS, 23 * MS + 1000),
        ];
        let mut sorted = history.to_vec();
        sorted.sort_by_key(|c| c.invoked);
        assert!(linearizable(&sorted, 0).is_err());
        // The first read alone already contradicts an `expire` that found the key live.
        assert!(linearizable(&sorted[..3], 0).is_err());
        let late_expire = [
            call(
                Op::Set {
                    value: 1,
                    ttl: Some(20),
                },
                Answer::Done,
                0,
                MS,
            ),
            call(
                Op::Expire { ttl: 60_000 },
                Answer::Flag(false),
                18 * MS,
                25 * MS,
            ),
            call(Op::Get, Answer::Value(None), 22 * MS, 22 * MS + 1000),
        ];
        let mut sorted = late_expire.to_vec();
        sorted.sort_by_key(|c| c.invoked);
        assert!(linearizable(&sorted, 0).is_ok());
    }

    #[test]
    fn overlapping_calls_may_take_effect_in_either_order() {
        let history = [
            call(
                Op::Set {
                    value: 1,
                    ttl: None,
                },
                Answer::Done,
                0,
                MS,
            ),
            call(
                Op::Incr {
                    delta: 1,
                    ttl: None,
                },
                Answer::Count(2),
                2 * MS,
                5 * MS,
            ),
            call(Op::Get, Answer::Value(Some(1)), 3 * MS, 4 * MS),
            call(Op::Get, Answer::Value(Some(2)), 6 * MS, 7 * MS),
        ];
        assert!(linearizable(&history, 0).is_ok());
        let wrong = [
            call(
                Op::Set {
                    value: 1,
                    ttl: None,
                },
                Answer::Done,
                0,
                MS,
            ),
            call(
                Op::Incr {
                    delta: 1,
                    ttl: None,
                },
                Answer::Count(2),
                2 * MS,
                3 * MS,
            ),
            call(Op::Get, Answer::Value(Some(1)), 4 * MS, 5 * MS),
        ];
        assert!(linearizable(&wrong, 0).is_err());
    }

    #[test]
    fn expiry_follows_the_deadline() {
        // A key set at [0, 1] ms with a 10 ms TTL is live until 10 ms at least and gone after
        // 11 ms at the latest.
        let set = call(
            Op::Set {
                value: 7,
                ttl: Some(10),
            },
            Answer::Done,
            0,
            MS,
        );
        let read = |at: i64, seen: Option<i64>| call(Op::Get, Answer::Value(seen), at, at + 1000);
        assert!(linearizable(&[set, read(5 * MS, Some(7))], 0).is_ok());
        assert!(linearizable(&[set, read(5 * MS, None)], 0).is_err());
        assert!(linearizable(&[set, read(12 * MS, None)], 0).is_ok());
        assert!(linearizable(&[set, read(12 * MS, Some(7))], 0).is_err());
        // A persist before the deadline keeps it for good.
        let persist = call(Op::Persist, Answer::Flag(true), 2 * MS, 3 * MS);
        assert!(linearizable(&[set, persist, read(50 * MS, Some(7))], 0).is_ok());
        assert!(linearizable(&[set, persist, read(50 * MS, None)], 0).is_err());
    }
}
