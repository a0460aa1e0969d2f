//! Batches on Redis (`mget`, `mset`, `mdel`): one command on a server or in a hash-tagged
//! namespace; on a cluster without the hash tag, one command per slot, each sent to the
//! primary serving its slot, all of them at once.
//!
//! The split is namestore's, not redis-rs's: redis-rs splits a multi-key command itself, but
//! leaves out the slots of a node it has no connection to (a primary that failed, until its
//! replica takes over and the client learns of it) and answers for the rest: an `MSET` reported
//! done with a third of its keys never written, a `DEL` counting only what the other nodes
//! deleted. A command routed to one slot instead fails when its node cannot be reached, and a
//! batch fails with it.

use std::collections::HashMap;

use bytes::Bytes;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, Value};

use super::connection::{Connection, Resend, answer_error, redirected_transaction, route};
use super::{RedisDriver, RedisScope};
use crate::Result;
use crate::ttl::Ttl;

/// A batch's keys by slot: each slot's route, with the positions of its keys in the batch, in
/// the order the slots first appear.
fn by_slot<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<(Route, Vec<usize>)> {
    let mut groups: Vec<(Route, Vec<usize>)> = Vec::new();
    let mut at: HashMap<Route, usize> = HashMap::new();
    for (position, key) in keys.into_iter().enumerate() {
        let route = Route::with_key(key, SlotAddr::Master);
        let group = *at.entry(route).or_insert_with(|| {
            groups.push((route, Vec::new()));
            groups.len() - 1
        });
        groups[group].1.push(position);
    }
    groups
}

impl RedisDriver {
    /// Whether a batch's keys may lie in several slots: a cluster without the hash tag.
    pub(super) fn splits_batches(&self) -> bool {
        self.config().is_cluster() && !self.config().hash_tag
    }

    /// Sends one command per slot group, `command` of the group's positions, each to the
    /// primary of its slot, all at once, within one call's bounds (an idempotent one: resent
    /// whole once after a lost connection); the answers in order, or the error of the first
    /// command that failed.
    async fn per_slot(
        &self,
        first: &str,
        groups: &[(Route, Vec<usize>)],
        command: impl Fn(&[usize]) -> Cmd + Sync,
    ) -> Result<Vec<Value>> {
        let command = &command;
        self.call(first, Resend::Allowed, |connection| async move {
            let sent = groups.iter().map(|(slot, positions)| {
                // Made here rather than cloned: a call is sent once but for a resend.
                let command = command(positions);
                let connection = connection.clone();
                async move {
                    match connection {
                        Connection::Cluster { mut main, .. } => {
                            let node = SingleNodeRoutingInfo::SpecificNode(*slot);
                            route(&mut main, command, RoutingInfo::SingleNode(node)).await
                        }
                        Connection::Single(mut single) => command.query_async(&mut single).await,
                    }
                }
            });
            futures_util::future::join_all(sent)
                .await
                .into_iter()
                .collect::<redis::RedisResult<Vec<Value>>>()
        })
        .await
    }

    /// `MGET` of the batch `keys`.
    pub(super) async fn get_batch(
        &self,
        s: &RedisScope,
        keys: &[&str],
    ) -> Result<Vec<Option<Bytes>>> {
        let full: Vec<Vec<u8>> = keys.iter().map(|key| s.key(key)).collect();
        if !self.splits_batches() {
            let mut command = redis::cmd("MGET");
            full.iter().for_each(|key| {
                command.arg(key);
            });
            let values: Vec<Option<Vec<u8>>> = self.query(keys[0], command).await?;
            return Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect());
        }
        let groups = by_slot(full.iter().map(Vec::as_slice));
        let answers = self
            .per_slot(keys[0], &groups, |positions| {
                let mut command = redis::cmd("MGET");
                for &position in positions {
                    command.arg(&full[position]);
                }
                command
            })
            .await?;
        let mut values = vec![None; keys.len()];
        for ((_, positions), answer) in groups.iter().zip(answers) {
            let answer = Vec::<Option<Vec<u8>>>::from_redis_value(answer)
                .map_err(|e| answer_error(RedisError::from(e), keys[0]))?;
            for (&position, value) in positions.iter().zip(answer) {
                values[position] = value.map(Bytes::from);
            }
        }
        Ok(values)
    }

    /// `MSET` of the batch `pairs`, without a TTL.
    pub(super) async fn set_batch(&self, s: &RedisScope, pairs: &[(&str, Bytes)]) -> Result<()> {
        let first = pairs.first().map_or("", |(k, _)| *k);
        let full: Vec<Vec<u8>> = pairs.iter().map(|(key, _)| s.key(key)).collect();
        let pair = |command: &mut Cmd, position: usize| {
            command.arg(&full[position]).arg(&pairs[position].1[..]);
        };
        if !self.splits_batches() {
            let mut command = redis::cmd("MSET");
            (0..pairs.len()).for_each(|position| pair(&mut command, position));
            return self.query::<()>(first, command).await;
        }
        let groups = by_slot(full.iter().map(Vec::as_slice));
        self.per_slot(first, &groups, |positions| {
            let mut command = redis::cmd("MSET");
            positions
                .iter()
                .for_each(|&position| pair(&mut command, position));
            command
        })
        .await
        .map(drop)
    }

    /// `SET … PX` of the batch `pairs` in `MULTI`/`EXEC`: one transaction, or one per slot
    /// (a transaction cannot span slots on a cluster), sent at once within one call's bounds.
    pub(super) async fn set_batch_with_ttl(
        &self,
        s: &RedisScope,
        pairs: &[(&str, Bytes)],
        ttl: Ttl,
    ) -> Result<()> {
        let first = pairs.first().map_or("", |(k, _)| *k);
        let full: Vec<Vec<u8>> = pairs.iter().map(|(key, _)| s.key(key)).collect();
        let groups = if self.splits_batches() {
            by_slot(full.iter().map(Vec::as_slice))
        } else {
            vec![(Route::new(0, SlotAddr::Master), (0..pairs.len()).collect())]
        };
        let transactions: Vec<Pipeline> = groups
            .iter()
            .map(|(_, positions)| {
                let mut transaction = redis::pipe();
                transaction.atomic();
                for &position in positions {
                    transaction
                        .cmd("SET")
                        .arg(&full[position])
                        .arg(&pairs[position].1[..])
                        .arg("PX")
                        .arg(ttl.as_millis())
                        .ignore();
                }
                transaction
            })
            .collect();
        let (transactions, groups, full) = (&transactions, &groups, &full);
        self.call(first, Resend::Allowed, |connection| async move {
            // Each goes to the primary of its first key's slot, its keys' slot.
            let sent = transactions.iter().map(|transaction| {
                let mut connection = connection.clone();
                async move { transaction.query_async::<()>(&mut connection).await }
            });
            let mut answers = futures_util::future::join_all(sent).await;
            // A slot that moved since the client library learned the map: it follows no
            // `MOVED` inside a transaction, nor learns the new map from one, so every later
            // batch would fail alike. One plain command of the slot's teaches it (followed,
            // and the map rebuilt); then the transaction, of which nothing ran, goes again.
            for (answer, (transaction, (_, positions))) in
                answers.iter_mut().zip(transactions.iter().zip(groups))
            {
                if answer.as_ref().is_err_and(redirected_transaction) {
                    let mut connection = connection.clone();
                    let key = &full[positions[0]];
                    let _ = redis::cmd("EXISTS")
                        .arg(key)
                        .query_async::<Value>(&mut connection)
                        .await;
                    *answer = transaction.query_async::<()>(&mut connection).await;
                }
            }
            answers
                .into_iter()
                .collect::<redis::RedisResult<Vec<()>>>()
                .map(drop)
        })
        .await
    }

    /// `DEL` of the batch `keys`: how many were present.
    pub(super) async fn delete_batch(&self, s: &RedisScope, keys: &[&str]) -> Result<u64> {
        let full: Vec<Vec<u8>> = keys.iter().map(|key| s.key(key)).collect();
        self.remove("DEL", keys[0], &full).await
    }

    /// `verb` (`DEL`, `UNLINK`) of the stored keys `full`, `first` naming the batch in errors:
    /// how many were present.
    pub(super) async fn remove(&self, verb: &str, first: &str, full: &[Vec<u8>]) -> Result<u64> {
        let command = |positions: &mut dyn Iterator<Item = usize>| {
            let mut command = redis::cmd(verb);
            positions.for_each(|position| {
                command.arg(&full[position]);
            });
            command
        };
        if !self.splits_batches() {
            let all = command(&mut (0..full.len()));
            return Ok(self.query::<i64>(first, all).await?.max(0).unsigned_abs());
        }
        let groups = by_slot(full.iter().map(Vec::as_slice));
        let answers = self
            .per_slot(first, &groups, |positions| {
                command(&mut positions.iter().copied())
            })
            .await?;
        let mut removed = 0;
        for answer in answers {
            let count = i64::from_redis_value(answer)
                .map_err(|e| answer_error(RedisError::from(e), first))?;
            removed += count.max(0).unsigned_abs();
        }
        Ok(removed)
    }
}
