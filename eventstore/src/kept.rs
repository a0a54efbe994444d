//! States folded from streams by earlier commands of this process, each with the version
//! (last sequence) it was folded up to, so the next command on the stream reads only the
//! events appended since instead of the whole stream. The store stays the truth: events
//! are immutable and a stream's sequences commit in order, so a state at version `v` plus
//! the committed events after `v` is the state of the whole stream; and an append still
//! checks the expected version. Bounded: when full, everything is dropped.
//!
//! Filled in one place: `Reader::load` keeps what it folded from committed events,
//! and a unit of work keeps the state after its own append once (and only if) it commits.

use std::collections::HashMap;

use uuid::Uuid;

use crate::stream::{AppendedEvent, Loaded};

/// How many folded streams of one type a process keeps between commands.
const KEPT_STATES: usize = 10_000;

/// The kept states, one typed cache per aggregate that is kept (a user's stream grows with
/// every profile change; tenants and sessions are short).
#[derive(Default)]
pub struct KeptStates {
    pub(crate) users: Cache<domain::User>,
}

impl KeptStates {
    /// Forgets everything kept about a subject (erasure: nothing personal stays in memory).
    pub(crate) fn forget(&self, subject_id: Uuid) {
        self.users.forget(subject_id);
    }

    /// Forgets every kept state (an erasure may have been missed).
    pub(crate) fn forget_everything(&self) {
        self.users.clear();
    }

    /// Whether a state of `subject_id` is kept.
    pub(crate) fn holds(&self, subject_id: Uuid) -> bool {
        self.users.lock().contains_key(&subject_id)
    }
}

/// The kept states of one aggregate type.
pub struct Cache<S> {
    states: std::sync::Mutex<HashMap<Uuid, Loaded<S>>>,
}

impl<S> Default for Cache<S> {
    fn default() -> Self {
        Cache {
            states: std::sync::Mutex::default(),
        }
    }
}

impl<S: Clone> Cache<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Loaded<S>>> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: Uuid) -> Option<Loaded<S>> {
        self.lock().get(&id).cloned()
    }

    /// Keeps `loaded` unless a later version of the stream is kept already.
    pub(crate) fn keep(&self, loaded: Loaded<S>) {
        let mut states = self.lock();
        if states.len() >= KEPT_STATES {
            states.clear();
        }
        match states.entry(loaded.id) {
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                if entry.get().version < loaded.version {
                    entry.insert(loaded);
                }
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(loaded);
            }
        }
    }

    fn forget(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// Keeps a folded state at the version and position its stream's last event was given.
pub(crate) type KeepAt = Box<dyn FnOnce(&KeptStates, i64, i64) + Send + Sync>;

/// A state to keep once the append that produced it commits: folded already, waiting for
/// the sequence and position its stream's last event was given.
pub(crate) struct PendingKeep {
    pub(crate) aggregate_id: Uuid,
    pub(crate) keep: KeepAt,
}

impl PendingKeep {
    /// Keeps each state at the version and position of its stream's last appended event
    /// (one pass over `appended`, however many states a large append keeps).
    pub(crate) fn resolve_all(
        pending: Vec<PendingKeep>,
        kept: &KeptStates,
        appended: &[AppendedEvent],
    ) {
        if pending.is_empty() {
            return;
        }
        let last: HashMap<Uuid, &AppendedEvent> = appended
            .iter()
            .map(|event| (event.aggregate_id, event))
            .collect();
        for keep in pending {
            if let Some(event) = last.get(&keep.aggregate_id) {
                (keep.keep)(kept, event.sequence, event.position);
            }
        }
    }
}
