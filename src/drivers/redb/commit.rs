//! The write path: one committer thread runs every write queued while the previous commit was
//! in flight in one write transaction and commits once (group commit).
//!
//! A write is a job that may run more than once: when one job of a group fails, the group's
//! transaction is rolled back and the others run again in a fresh one without it, so a call
//! that fails part-way (an `mset` whose fifth insert hits a damaged page) never has its first
//! four inserts committed with its neighbours' writes. A failed commit answers every job of
//! its group with the cause, and changes nothing.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::{Durability, ReadableTable};
use tokio::sync::oneshot;

use super::compact::{Compaction, compact};
use super::layout::{DATA, EXPIRY, decode, encode, live};
use super::store::{Store, storage};
use crate::{Error, Result};

/// A write transaction's view: the live entry of a key, and writes that keep the expiry index
/// in step with the data. `now` is the group's clock reading (Unix ms).
pub(super) struct Writer<'t> {
    pub(super) data: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) expiry: redb::Table<'t, (u64, &'static [u8]), ()>,
    pub(super) now: u64,
}

impl Writer<'_> {
    /// The key's deadline and value if it is present and live; an expired entry is removed.
    pub(super) fn live(&mut self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>> {
        let found = self.data.get(key).map_err(storage)?.map(|v| {
            let (deadline, value) = decode(v.value());
            (deadline, value.to_vec())
        });
        match found {
            Some((deadline, value)) if live(deadline, self.now) => Ok(Some((deadline, value))),
            Some(_) => {
                self.remove(key)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub(super) fn put(&mut self, key: &[u8], deadline: u64, value: &[u8]) -> Result<()> {
        if let Some(old) = self
            .data
            .insert(key, encode(deadline, value).as_slice())
            .map_err(storage)?
        {
            let (old_deadline, _) = decode(old.value());
            drop(old);
            if old_deadline != 0 {
                self.expiry.remove((old_deadline, key)).map_err(storage)?;
            }
        }
        if deadline != 0 {
            self.expiry.insert((deadline, key), ()).map_err(storage)?;
        }
        Ok(())
    }

    /// Removes the key; returns whether it was present and live.
    pub(super) fn remove(&mut self, key: &[u8]) -> Result<bool> {
        let Some(old) = self.data.remove(key).map_err(storage)? else {
            return Ok(false);
        };
        let (deadline, _) = decode(old.value());
        drop(old);
        if deadline != 0 {
            self.expiry.remove((deadline, key)).map_err(storage)?;
        }
        Ok(live(deadline, self.now))
    }
}

/// What the committer is sent.
pub(super) enum Request {
    /// A call's writes.
    Write(Box<dyn Job>),
    /// [`RedbDriver::flush`](super::RedbDriver::flush): answered once every commit made before
    /// it is on disk, or with what was lost since the last flush reported.
    Flush(oneshot::Sender<Result<()>>),
    /// [`RedbDriver::compact`](super::RedbDriver::compact): run after the group it came
    /// with has committed.
    Compact(oneshot::Sender<Result<Compaction>>),
}

/// One call's writes, queued for the committer.
pub(super) trait Job: Send {
    /// Runs the call's writes in the group's transaction; `false` when the call failed, and
    /// its transaction must then be rolled back. May run again in a later transaction.
    fn run(&mut self, writer: &mut Writer<'_>) -> bool;

    /// Sends the call its answer: its own error, else the commit's failure, else its result.
    fn answer(self: Box<Self>, commit: Result<(), &Error>);
}

struct Call<T, F> {
    work: F,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnMut(&mut Writer<'_>) -> Result<T> + Send,
{
    fn run(&mut self, writer: &mut Writer<'_>) -> bool {
        let result = (self.work)(writer);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), &Error>) {
        let answer = match (self.result, commit) {
            (Some(Err(own)), _) => Err(own),
            (_, Err(failed)) => Err(failed.duplicate()),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(Error::backend("the write did not run")),
        };
        let _ = self.reply.send(answer);
    }
}

/// Queues `work` for the committer; the receiver answers once the transaction that carries
/// it has committed (durably unless configured otherwise). `work` must be repeatable: it runs
/// again if its group is rolled back for another call's failure.
fn queue<T: Send + 'static>(
    store: &Store,
    jobs: Option<&mpsc::Sender<Request>>,
    work: impl FnMut(&mut Writer<'_>) -> Result<T> + Send + 'static,
) -> Result<oneshot::Receiver<Result<T>>> {
    store.check()?;
    let (reply, answered) = oneshot::channel();
    let job: Box<dyn Job> = Box::new(Call {
        work,
        result: None,
        reply,
    });
    send(jobs, Request::Write(job))?;
    Ok(answered)
}

fn send(jobs: Option<&mpsc::Sender<Request>>, request: Request) -> Result<()> {
    let jobs = jobs.ok_or_else(|| Error::backend("the store is closing"))?;
    jobs.send(request)
        .map_err(|_| Error::backend("the committer thread stopped"))
}

/// Asks the committer to flush every commit made so far, and awaits the flush; see
/// [`RedbDriver::flush`](super::RedbDriver::flush).
pub(super) async fn flush(store: &Store, jobs: Option<&mpsc::Sender<Request>>) -> Result<()> {
    store.check()?;
    let (reply, answered) = oneshot::channel();
    send(jobs, Request::Flush(reply))?;
    answer(store, answered.await.ok())
}

/// Asks the committer to compact the file, and awaits the compaction; see
/// [`RedbDriver::compact`](super::RedbDriver::compact).
pub(super) async fn compact_file(
    store: &Store,
    jobs: Option<&mpsc::Sender<Request>>,
) -> Result<Compaction> {
    store.check()?;
    let (reply, answered) = oneshot::channel();
    send(jobs, Request::Compact(reply))?;
    answer(store, answered.await.ok())
}

/// Queues `work` and waits, blocking the thread, until it is committed: for the store's own
/// threads (the reclaimer).
pub(super) fn write<T: Send + 'static>(
    store: &Store,
    jobs: Option<&mpsc::Sender<Request>>,
    work: impl FnMut(&mut Writer<'_>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let answered = queue(store, jobs, work)?;
    answer(store, answered.blocking_recv().ok())
}

/// Queues `work` and awaits its commit: the calling task waits without holding a thread (the
/// queue never blocks, the committer answers through a one-shot channel).
pub(super) async fn write_async<T: Send + 'static>(
    store: &Store,
    jobs: Option<&mpsc::Sender<Request>>,
    work: impl FnMut(&mut Writer<'_>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let answered = queue(store, jobs, work)?;
    answer(store, answered.await.ok())
}

fn answer<T>(store: &Store, answer: Option<Result<T>>) -> Result<T> {
    match answer {
        Some(answer) => answer,
        None => {
            store.check()?;
            Err(Error::backend("the write was dropped"))
        }
    }
}

/// How long a non-durable store flushes every commit after a commit failed (see
/// [`commit_loop`]).
const RECOVERY: Duration = Duration::from_secs(60);

/// How long the committer of a non-durable store polls for the next write (yielding its core
/// between polls) before it sleeps on the queue: a write that comes meanwhile is taken
/// without waking a sleeping thread, which on the 2-vCPU VM of `docs/performance.md` costs
/// tens of microseconds, more than the commit. A lone `set` there: 30 µs instead of 64. A
/// durable store does not poll: its commit's `fsync` dwarfs the wake.
const SPIN: Duration = Duration::from_micros(50);

/// The committer thread: takes the writes queued while the previous commit was in flight and
/// commits them as one group, until the driver is dropped.
///
/// In the non-durable mode a commit is not flushed to disk; the first commit left unflushed
/// is flushed within [`flush_interval`](super::RedbConfig::flush_interval): by the first group
/// committed that long after it (flushing a commit flushes every commit before it), or, when
/// no write comes by then, by an empty commit of the committer's own.
///
/// A flush that fails (a full disk) loses the commits it was to flush: redb must reopen the
/// file, which holds the last flushed state. Unflushed commits touch no disk, so on a full disk
/// they would go on succeeding, each acknowledged and lost at the next flush, and each such
/// loss gives back the room the next flush needs: a store left non-durable would lose the
/// writes of an interval again and again. Instead, from a failed commit on, every group is
/// flushed as it commits (failing with the cause while the disk is full) until
/// [`RECOVERY`] has passed without a failure.
///
/// A flush call ([`Request::Flush`]) has the group that carries it flushed (an empty one if it
/// came alone), and is answered with that commit's failure, or else with the first loss of
/// acknowledged commits since a flush call last reported one: the commits left unflushed
/// when the database was closed (by a failed flush of the committer's own, or another I/O
/// failure).
pub(super) fn commit_loop(store: Arc<Store>, requests: mpsc::Receiver<Request>) {
    let interval = store.config.flush_interval;
    // When the oldest commit not yet flushed was made.
    let mut unflushed: Option<Instant> = None;
    // When a commit last failed, while within `RECOVERY` of it: every group is flushed.
    let mut failed: Option<Instant> = None;
    let mut losses = Losses {
        closes: store.closes(),
        lost: None,
    };
    // Whether the last commit failed (a change reported once each way).
    let mut failing = false;
    loop {
        let due = unflushed.and_then(|since| since.checked_add(interval));
        // The next request, if it comes within `SPIN`.
        let spun = if store.config.durable {
            None
        } else {
            let until = Instant::now() + SPIN;
            loop {
                match requests.try_recv() {
                    Ok(request) => break Some(Ok(request)),
                    Err(mpsc::TryRecvError::Disconnected) => {
                        break Some(Err(RecvTimeoutError::Disconnected));
                    }
                    Err(mpsc::TryRecvError::Empty) if Instant::now() < until => {
                        std::thread::yield_now();
                    }
                    Err(mpsc::TryRecvError::Empty) => break None,
                }
            }
        };
        let first = match (spun, due) {
            (Some(spun), _) => spun,
            (None, None) => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
            (None, Some(due)) => {
                requests.recv_timeout(due.saturating_duration_since(Instant::now()))
            }
        };
        let mut round = Round::default();
        // No request within the interval: an empty commit of the committer's own flushes.
        let timed_out = match first {
            Ok(request) => {
                round.take(request);
                false
            }
            Err(RecvTimeoutError::Timeout) => true,
            // The driver is dropped: closing the file flushes it.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        while !timed_out && round.writes.len() < 4096 {
            match requests.try_recv() {
                Ok(request) => round.take(request),
                Err(_) => break,
            }
        }
        let Round {
            writes,
            flushes,
            compactions,
        } = round;
        failed = failed.filter(|at| at.elapsed() < RECOVERY);
        let flush = store.config.durable
            || timed_out
            || !flushes.is_empty()
            || failed.is_some()
            || unflushed.is_some_and(|since| since.elapsed() >= interval)
            || interval.is_zero();
        // A round of compactions alone commits nothing before them.
        let commits = !writes.is_empty() || !flushes.is_empty() || timed_out;
        let outcome = if commits {
            commit_group(&store, writes, flush)
        } else {
            Ok(())
        };
        losses.look(&store, &mut unflushed, outcome.as_ref().err());
        if commits && failing != outcome.is_err() {
            failing = outcome.is_err();
            match &outcome {
                Err(error) => tracing::error!(
                    target: "namestore::redb",
                    path = %store.config.path.display(),
                    %error,
                    "commits to the redb file fail; writes fail until one succeeds"
                ),
                Ok(()) => tracing::info!(
                    target: "namestore::redb",
                    path = %store.config.path.display(),
                    "commits to the redb file succeed again"
                ),
            }
        }
        match &outcome {
            _ if !commits => {}
            Ok(()) if flush => unflushed = None,
            Ok(()) => unflushed = unflushed.or_else(|| Some(Instant::now())),
            Err(_) => {
                failed = Some(Instant::now());
                if timed_out && unflushed.is_some() {
                    // Tried again an interval later, not in a loop.
                    unflushed = failed;
                }
            }
        }
        if !flushes.is_empty() {
            // A flush that failed reports the loss itself (what it was to flush is gone), and
            // any loss before it with it.
            let report = match outcome {
                Err(error) => {
                    losses.lost = None;
                    Some(error)
                }
                Ok(()) => losses.lost.take().map(Error::backend),
            };
            for reply in flushes {
                let _ = reply.send(report.as_ref().map_or(Ok(()), |e| Err(e.duplicate())));
            }
        }
        if !compactions.is_empty() {
            let compacted = compact(&store);
            losses.look(&store, &mut unflushed, compacted.as_ref().err());
            // A compaction commits durably: what was unflushed is flushed.
            if compacted.is_ok() {
                unflushed = None;
            }
            for reply in compactions {
                let _ = reply.send(compacted.as_ref().copied().map_err(Error::duplicate));
            }
        }
    }
}

/// What the committer took from its queue for one group.
#[derive(Default)]
struct Round {
    writes: Vec<Box<dyn Job>>,
    flushes: Vec<oneshot::Sender<Result<()>>>,
    compactions: Vec<oneshot::Sender<Result<Compaction>>>,
}

impl Round {
    fn take(&mut self, request: Request) {
        match request {
            Request::Write(job) => self.writes.push(job),
            Request::Flush(reply) => self.flushes.push(reply),
            Request::Compact(reply) => self.compactions.push(reply),
        }
    }
}

/// The committer's view of the database's closes, and of the acknowledged writes they lost.
struct Losses {
    /// The database's closes seen: another means the commits it held unflushed are lost.
    closes: u64,
    /// Acknowledged writes lost since a flush call last reported (the first loss).
    lost: Option<String>,
}

impl Losses {
    /// After a step that may have closed the database (failing with `cause`, if it failed):
    /// a close since the last look lost the commits made unflushed since `unflushed`. The
    /// loss is reported at once (a `tracing` error) and kept for the next flush call.
    fn look(&mut self, store: &Store, unflushed: &mut Option<Instant>, cause: Option<&Error>) {
        if store.closes() == self.closes {
            return;
        }
        self.closes = store.closes();
        if let Some(since) = unflushed.take() {
            let loss = lost_writes(since, cause);
            tracing::error!(
                target: "namestore::redb",
                path = %store.config.path.display(),
                loss,
                "acknowledged writes to the redb file are lost (durable=0)"
            );
            self.lost.get_or_insert(loss);
        }
    }
}

/// What a flush call reports of commits lost unflushed: those made from `since` on, when the
/// database was closed by a failed commit (`cause`) or by another I/O failure (a read's: redb
/// flushes what it holds as it closes the file, if the disk lets it, so they may be there).
fn lost_writes(since: Instant, cause: Option<&Error>) -> String {
    let over = since.elapsed();
    match cause {
        Some(cause) => format!(
            "writes acknowledged over {over:.1?} were lost: a commit failed ({cause}) before \
             they were flushed; the file holds what was flushed before them"
        ),
        None => format!(
            "writes acknowledged over {over:.1?} may have been lost: the file was closed after \
             an I/O failure before they were flushed; it holds at least what was flushed \
             before them"
        ),
    }
}

/// Runs `pending` in one write transaction and commits it, flushed to disk if `flush` (always,
/// on a durable store); an empty group with `flush` flushes the commits before it. The commit's
/// outcome, as every job of the group was answered.
fn commit_group(store: &Store, mut pending: Vec<Box<dyn Job>>, flush: bool) -> Result<()> {
    let mut refused: Vec<Box<dyn Job>> = Vec::new();
    let now = store.visibility.begin();
    let outcome = store.contain(|| {
        loop {
            let db = store.database()?;
            let mut txn = store.redb(db.writable()?.begin_write())?;
            if !flush {
                store.redb(txn.set_durability(Durability::None))?;
            }
            let mut failed = Vec::new();
            {
                let mut writer = Writer {
                    data: store.redb(txn.open_table(DATA))?,
                    expiry: store.redb(txn.open_table(EXPIRY))?,
                    now,
                };
                for (at, job) in pending.iter_mut().enumerate() {
                    if !job.run(&mut writer) {
                        failed.push(at);
                    }
                }
            }
            if failed.is_empty() {
                return store.redb(txn.commit());
            }
            // Roll back: the failed calls' partial writes go with the transaction, and the
            // others run again without them.
            store.redb(txn.abort())?;
            for at in failed.into_iter().rev() {
                refused.push(pending.remove(at));
            }
            if pending.is_empty() {
                return Ok(());
            }
        }
    });
    store.visibility.end();
    for job in refused {
        job.answer(Ok(()));
    }
    for job in pending {
        job.answer(outcome.as_ref().map(|_| ()));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn job<T: Send + 'static>(
        work: impl FnMut(&mut Writer<'_>) -> Result<T> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T>>) {
        let (reply, answered) = oneshot::channel();
        let call = Call {
            work,
            result: None,
            reply,
        };
        (Box::new(call), answered)
    }

    /// A call that fails after some of its writes (an `mset` whose second insert fails) shares
    /// its group's transaction with other calls: none of its writes may be committed with
    /// theirs, and theirs must still commit.
    #[test]
    fn a_call_that_fails_part_way_leaves_nothing_in_its_group_commit() {
        let (store, path) = crate::drivers::redb::store::fresh_store("commit");
        let reruns = Arc::new(AtomicUsize::new(0));
        let (before, before_answer) = job(|w| w.put(b"t:before", 0, b"1"));
        let (half, half_answer) = job(|w| {
            w.put(b"t:half-1", 0, b"1")?;
            Err::<(), _>(Error::backend("the second insert failed"))
        });
        let counted = Arc::clone(&reruns);
        let (after, after_answer) = job(move |w| {
            counted.fetch_add(1, Ordering::SeqCst);
            w.put(b"t:after", 0, b"3")
        });
        commit_group(&store, vec![before, half, after], true).unwrap();

        assert!(before_answer.blocking_recv().unwrap().is_ok());
        let failed = half_answer.blocking_recv().unwrap().unwrap_err();
        assert!(
            failed.to_string().contains("the second insert failed"),
            "{failed}"
        );
        assert!(after_answer.blocking_recv().unwrap().is_ok());
        assert_eq!(
            store.entry(b"t:half-1").unwrap(),
            None,
            "half a call was committed"
        );
        assert!(store.entry(b"t:before").unwrap().is_some());
        assert!(store.entry(b"t:after").unwrap().is_some());
        // The others ran once in the rolled-back transaction, once in the committed one.
        assert_eq!(reruns.load(Ordering::SeqCst), 2);
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
