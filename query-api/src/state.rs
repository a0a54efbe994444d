//! What every handler shares.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::settings::Settings;

pub struct AppState {
    pub pool: Pool,
    pub search: crate::search::SearchService,
    /// The projections' positions, for reads that wait for one.
    pub positions: Arc<crate::positions::Positions>,
    pub settings: Arc<Settings>,
}
