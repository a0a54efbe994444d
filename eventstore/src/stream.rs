//! What the store knows about a stream: the state folded from it with its version, the
//! version a decision expects, and what an append gave each event.

use uuid::Uuid;

/// The expected version of one stream: the number of events the decision saw in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedVersion {
    pub aggregate_id: Uuid,
    pub version: i64,
}

/// What an append gave each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub aggregate_id: Uuid,
    pub sequence: i64,
    pub position: i64,
}

/// A folded aggregate with what the store knows about its stream.
#[derive(Debug, Clone)]
pub struct Loaded<S> {
    pub id: Uuid,
    pub state: S,
    /// The stream's version (its last sequence), for the expected version of an append.
    pub version: i64,
    /// The position of the stream's last event, answered when a command changes nothing.
    pub last_position: i64,
}

impl<S: Default> Loaded<S> {
    /// A stream with no events yet.
    pub fn new(id: Uuid) -> Self {
        Loaded {
            id,
            state: S::default(),
            version: 0,
            last_position: 0,
        }
    }
}
