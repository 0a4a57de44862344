//! The queue of paths to look at, each due at a time.
//!
//! A path is due once it has been quiet for a while after its last event. A file that was
//! written to and not yet closed waits for its close, or, if none comes, for the longer
//! write timeout. Many events for one path make one entry: the queue holds each path once.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    due: Instant,
    seq: u64,
}

/// Paths waiting to be looked at, in due order.
#[derive(Debug)]
pub struct Schedule {
    quiet: Duration,
    write_timeout: Duration,
    entries: HashMap<PathBuf, Entry>,
    order: BTreeSet<(Instant, u64, PathBuf)>,
    next_seq: u64,
}

impl Schedule {
    pub fn new(quiet: Duration, write_timeout: Duration) -> Schedule {
        Schedule {
            quiet,
            write_timeout,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Something happened at `path`; `writing` when data was written and a close will follow.
    pub fn event(&mut self, path: PathBuf, writing: bool, now: Instant) {
        let wait = if writing { self.write_timeout } else { self.quiet };
        self.set(path, now + wait);
    }

    /// The file at `path` was closed after writing: it is due after the quiet time.
    pub fn closed(&mut self, path: PathBuf, now: Instant) {
        self.set(path, now + self.quiet);
    }

    /// Look at `path` at `due`, or at once when `due` is `None`; an existing entry that is
    /// due sooner keeps its time.
    pub fn at(&mut self, path: PathBuf, due: Option<Instant>, now: Instant) {
        let due = due.unwrap_or(now);
        match self.entries.get(&path) {
            Some(entry) if entry.due <= due => {}
            _ => self.set(path, due),
        }
    }

    fn set(&mut self, path: PathBuf, due: Instant) {
        if let Some(old) = self.entries.remove(&path) {
            self.order.remove(&(old.due, old.seq, path.clone()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert((due, seq, path.clone()));
        self.entries.insert(path, Entry { due, seq });
    }

    /// When the next path falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.order.first().map(|(due, _, _)| *due)
    }

    /// Takes the path that fell due first, if one is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<PathBuf> {
        let (due, _, _) = self.order.first()?;
        if *due > now {
            return None;
        }
        let (_, _, path) = self.order.pop_first()?;
        self.entries.remove(&path);
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_waits_for_its_close() {
        let quiet = Duration::from_millis(100);
        let mut schedule = Schedule::new(quiet, Duration::from_secs(60));
        let start = Instant::now();
        schedule.event("/r/a.jpg".into(), true, start);
        schedule.event("/r/b.jpg".into(), false, start);
        assert_eq!(schedule.pop_due(start + quiet), Some(PathBuf::from("/r/b.jpg")));
        assert_eq!(schedule.pop_due(start + Duration::from_secs(30)), None);
        schedule.closed("/r/a.jpg".into(), start + Duration::from_secs(30));
        assert_eq!(schedule.len(), 1);
        let after_close = start + Duration::from_secs(30) + quiet;
        assert_eq!(schedule.pop_due(after_close), Some(PathBuf::from("/r/a.jpg")));
        assert!(schedule.is_empty());
    }

    #[test]
    fn events_push_a_path_back_and_keep_one_entry() {
        let quiet = Duration::from_millis(100);
        let mut schedule = Schedule::new(quiet, Duration::from_secs(1));
        let start = Instant::now();
        for step in 0..5 {
            schedule.event("/r/a.jpg".into(), false, start + quiet * step);
        }
        assert_eq!(schedule.len(), 1);
        assert_eq!(schedule.pop_due(start + quiet * 4), None);
        assert_eq!(schedule.next_due(), Some(start + quiet * 5));
        schedule.at("/r/a.jpg".into(), None, start);
        assert_eq!(schedule.pop_due(start), Some(PathBuf::from("/r/a.jpg")));
    }
}
