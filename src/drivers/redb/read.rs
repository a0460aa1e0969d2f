//! The read path: read transactions on the latest committed snapshot.
//!
//! Every read that judges a key expired goes through [`Store::read`] (or
//! [`Store::read_now`]), which makes sure no write in flight has decided otherwise (see
//! [`Visibility`](super::store::Visibility)). The lookups a driver call makes are plain
//! functions ([`entry`], [`entries`], [`ttl`]), so the same lookup runs on the caller's
//! thread or, when it must wait, on a blocking one.

use std::ops::Bound;

use bytes::Bytes;
use redb::ReadOnlyTable;

use super::layout::{DATA, PAGE, decode, live, now_ms};
use super::store::{Store, storage};
use crate::Result;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName, split_full_key};
use crate::ttl::KeyTtl;

/// The data table as a read sees it.
pub(super) type Data = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// What a read found about expiry: the earliest deadline among the entries it judged expired.
#[derive(Default)]
pub(super) struct Expired(Option<u64>);

impl Expired {
    /// Whether an entry with `deadline` is live at `now`; remembers it when it is not.
    pub(super) fn live(&mut self, deadline: u64, now: u64) -> bool {
        let live = live(deadline, now);
        if !live {
            self.0 = Some(self.0.map_or(deadline, |d| d.min(deadline)));
        }
        live
    }
}

/// The live entry of `key`: its deadline and value.
pub(super) fn entry(
    key: &[u8],
    data: &Data,
    now: u64,
    expired: &mut Expired,
) -> Result<Option<(u64, Bytes)>> {
    Ok(data.get(key).map_err(storage)?.and_then(|v| {
        let (deadline, value) = decode(v.value());
        expired
            .live(deadline, now)
            .then(|| (deadline, Bytes::copy_from_slice(value)))
    }))
}

/// The live values of `keys`, from one snapshot.
pub(super) fn entries(
    keys: &[Vec<u8>],
    data: &Data,
    now: u64,
    expired: &mut Expired,
) -> Result<Vec<Option<Bytes>>> {
    keys.iter()
        .map(|key| Ok(entry(key, data, now, expired)?.map(|(_, value)| value)))
        .collect()
}

/// The time `key` has left.
pub(super) fn ttl(key: &[u8], data: &Data, now: u64, expired: &mut Expired) -> Result<KeyTtl> {
    Ok(match data.get(key).map_err(storage)? {
        None => KeyTtl::Missing,
        Some(v) => match decode(v.value()).0 {
            0 => KeyTtl::NoExpiry,
            deadline if expired.live(deadline, now) => {
                KeyTtl::ExpiresIn(std::time::Duration::from_millis(deadline - now))
            }
            _ => KeyTtl::Missing,
        },
    })
}

/// Checks that a range scan's keys rise strictly. A damaged tree can hand back keys it
/// already gave (a page pointing back at an earlier one), which would make a listing endless;
/// that is a damaged file, reported as such.
fn rising(previous: Option<&[u8]>, key: &[u8]) -> Result<()> {
    match previous {
        Some(previous) if key <= previous => Err(crate::Error::corrupted(
            "the data table's keys are out of order: the file is damaged",
        )),
        _ => Ok(()),
    }
}

impl Store {
    /// Runs `look` on a snapshot of the data at the clock reading `now`, and answers what it
    /// returns once no write in flight contradicts an expiry it saw; reads again otherwise.
    pub(super) fn read<T>(
        &self,
        mut look: impl FnMut(&Data, u64, &mut Expired) -> Result<T>,
    ) -> Result<T> {
        loop {
            let mark = self.visibility.mark();
            let mut expired = Expired::default();
            let answer = {
                let db = self.database()?;
                let txn = self.redb(db.begin_read())?;
                let data = self.redb(txn.open_table(DATA))?;
                look(&data, now_ms(), &mut expired)?
            };
            // The snapshot is let go before waiting: a group that must reopen the file after
            // an I/O failure waits for every handle on the old one.
            match expired.0 {
                Some(deadline) if !self.visibility.expiry_stands(mark, deadline) => continue,
                _ => return Ok(answer),
            }
        }
    }

    /// As [`read`](Self::read), but never waits: `None` when answering would need a wait
    /// (the file must be opened again after an I/O failure, or a write in flight may have
    /// decided otherwise about an expiry this read saw). The caller then reads again with
    /// `read`, on a thread that may block. Takes one read transaction.
    pub(super) fn read_now<T>(
        &self,
        look: impl FnOnce(&Data, u64, &mut Expired) -> Result<T>,
    ) -> Result<Option<T>> {
        let mark = self.visibility.mark();
        let Some(db) = self.database_now()? else {
            return Ok(None);
        };
        let mut expired = Expired::default();
        let answer = {
            let txn = self.redb(db.begin_read())?;
            let data = self.redb(txn.open_table(DATA))?;
            look(&data, now_ms(), &mut expired)?
        };
        Ok(match expired.0 {
            Some(deadline) if !self.visibility.stands_now(mark, deadline) => None,
            _ => Some(answer),
        })
    }

    /// The live entry of `key`: its deadline and value.
    #[cfg(test)]
    pub(super) fn entry(&self, key: &[u8]) -> Result<Option<(u64, Bytes)>> {
        self.read(|data, now, expired| entry(key, data, now, expired))
    }

    /// Entries stored under `prefix`, expired ones not reclaimed yet included.
    pub(super) fn stored_entries(&self, prefix: &[u8]) -> Result<usize> {
        self.read(|data, _, _| {
            let mut count = 0;
            let mut previous: Vec<u8> = Vec::new();
            for entry in data.range::<&[u8]>(prefix..).map_err(storage)? {
                let (key, _) = entry.map_err(storage)?;
                let key = key.value();
                if !key.starts_with(prefix) {
                    break;
                }
                rising((count > 0).then_some(&previous[..]), key)?;
                previous.clear();
                previous.extend_from_slice(key);
                count += 1;
            }
            Ok(count)
        })
    }

    /// One page of the namespace's live keys matching `pattern`, after `after`; the last key
    /// read, to resume from, or `None` at the end. A listing is not a snapshot (SPEC 7.2), so
    /// its expiry judgements need no coordination with writes in flight.
    pub(super) fn page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        pattern: &Pattern,
    ) -> Result<(Vec<String>, Option<Vec<u8>>)> {
        let db = self.database()?;
        let txn = self.redb(db.begin_read())?;
        let data = self.redb(txn.open_table(DATA))?;
        let now = now_ms();
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(prefix),
        };
        let mut keys = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for entry in data
            .range::<&[u8]>((start, Bound::Unbounded))
            .map_err(storage)?
            .take(PAGE)
        {
            let (key, value) = entry.map_err(storage)?;
            let full = key.value();
            rising(last.as_deref().or(after), full)?;
            let Some(business) = full.strip_prefix(prefix) else {
                return Ok((keys, None));
            };
            last = Some(full.to_vec());
            if let Ok(business) = std::str::from_utf8(business)
                && live(decode(value.value()).0, now)
                && pattern.matches(business)
            {
                keys.push(business.to_owned());
            }
        }
        Ok((keys, last))
    }

    /// Counts up to [`PAGE`] keys after `census.after` in one read transaction; returns the
    /// namespaces completed in that page.
    pub(super) fn census_page(&self, census: &mut Census) -> Result<Vec<NamespaceInfo>> {
        let db = self.database()?;
        let txn = self.redb(db.begin_read())?;
        let data = self.redb(txn.open_table(DATA))?;
        let now = now_ms();
        let start = match census.after.as_deref() {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut finished = Vec::new();
        let mut read = 0;
        for entry in data
            .range::<&[u8]>((start, Bound::Unbounded))
            .map_err(storage)?
            .take(PAGE)
        {
            let (key, value) = entry.map_err(storage)?;
            read += 1;
            let full = key.value();
            rising(census.after.as_deref(), full)?;
            census.after = Some(full.to_vec());
            let name = std::str::from_utf8(full)
                .ok()
                .and_then(split_full_key)
                .filter(|(_, key)| !key.is_empty());
            let Some((name, _)) = name else { continue };
            if !live(decode(value.value()).0, now) {
                continue;
            }
            match &mut census.current {
                Some((current, count)) if *current == name => *count += 1,
                current => {
                    if let Some((done, count)) = current.replace((name, 1)) {
                        finished.push(NamespaceInfo::new(done, count));
                    }
                }
            }
        }
        if read < PAGE {
            census.done = true;
            if let Some((name, count)) = census.current.take() {
                finished.push(NamespaceInfo::new(name, count));
            }
        }
        Ok(finished)
    }
}

/// Where a walk of every namespace stands: keys are in order, so a namespace's keys are
/// contiguous and its count is final when the next namespace starts.
#[derive(Default)]
pub(super) struct Census {
    after: Option<Vec<u8>>,
    current: Option<(NamespaceName, u64)>,
    pub(super) done: bool,
}

impl Census {
    /// A walk that stopped (after an error).
    pub(super) fn ended() -> Self {
        Census {
            done: true,
            ..Census::default()
        }
    }
}
