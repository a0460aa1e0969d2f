//! The reclaimer's schedule: the tables that hold keys with a TTL, by the time their earliest
//! deadline comes, so that a round of the reclaimer, and a write that must purge what expired
//! before it evicts (SPEC 10.4), visit the tables with something expired and no others.
//! (Visiting every table that held a deadline took 37% of a CPU for an idle store of 100,000
//! namespaces of one session each, and 157 µs a write for a full one.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering;

use super::table::Table;

#[derive(Default)]
pub(super) struct Schedule {
    /// (time, table id), earliest first. A table may be here more than once: each time its
    /// due time was lowered, or set after a visit. Times it has moved past come out and are
    /// skipped.
    times: BinaryHeap<Reverse<(u64, u64)>>,
    /// The tables with a time here, by id. A table the registry drops leaves at once, so
    /// its memory does not wait for its time.
    tables: HashMap<u64, Table>,
}

impl Schedule {
    /// `table` is due at `at`.
    pub(super) fn add(&mut self, at: u64, table: &Table) {
        let id = table.id();
        self.tables.entry(id).or_insert_with(|| table.clone());
        self.times.push(Reverse((at, id)));
    }

    /// Takes out the tables due at `now` (`u64::MAX`: every table), each once, and says
    /// when the next is due (a lower bound: `u64::MAX` when none is scheduled).
    pub(super) fn take_due(&mut self, now: u64) -> (Vec<Table>, u64) {
        let mut due = Vec::new();
        while let Some(&Reverse((at, id))) = self.times.peek() {
            if at > now {
                return (due, at);
            }
            self.times.pop();
            // A time the table's due time has moved past since (a visit set it later, and
            // added that time) leaves the table where it is.
            if self
                .tables
                .get(&id)
                .is_some_and(|table| table.meta.due.load(Ordering::SeqCst) <= now)
                && let Some(table) = self.tables.remove(&id)
            {
                due.push(table);
            }
        }
        (due, u64::MAX)
    }

    /// Drops `table` from the schedule (the registry dropped it).
    pub(super) fn remove(&mut self, table: &Table) {
        self.tables.remove(&table.id());
    }

    /// Keeps the times from growing with those of tables gone: once they outnumber the
    /// tables by far, only the ones of scheduled tables stay.
    pub(super) fn trim(&mut self) {
        if self.times.len() > 64 && self.times.len() > 4 * self.tables.len() {
            let tables = &self.tables;
            self.times
                .retain(|Reverse((_, id))| tables.contains_key(id));
            self.times.shrink_to_fit();
        }
        if self.tables.capacity() > 64 && self.tables.len() < self.tables.capacity() / 4 {
            self.tables.shrink_to_fit();
        }
    }
}
