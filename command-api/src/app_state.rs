//! What every handler shares.

use std::sync::Arc;

use eventstore::EventStore;
use infra::auth::HashingPool;
use infra::tokens::Tokens;

use crate::settings::Settings;

pub struct AppState {
    pub store: EventStore,
    /// Password hashing, on one thread per core.
    pub hashing: HashingPool,
    pub tokens: Arc<Tokens>,
    pub settings: Arc<Settings>,
}
