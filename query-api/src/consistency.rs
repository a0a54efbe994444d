//! Read-your-writes: `X-Min-Position: <position>` makes a query wait (bounded) until the
//! projection it reads has applied the event at that position; every answer says which
//! position it reflects in `X-Projection-Position`.

use eventstore::Order;

use actix_web::HttpRequest;
use api_common::ApiError;
use deadpool_postgres::Object;

pub const MIN_POSITION_HEADER: &str = "x-min-position";
pub const PROJECTION_POSITION_HEADER: &str = "X-Projection-Position";

/// The position the client asked to see, if any.
pub fn min_position(request: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = request.headers().get(MIN_POSITION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::Validation(
                "X-Min-Position must be a non-negative integer (an event position)".into(),
            )
        })
}

/// Where the event at `position` stands in publication order; a position no event has is a
/// client error.
pub async fn target(client: &Object, position: i64) -> Result<Order, ApiError> {
    let row = client
        .query_opt(
            "SELECT transaction_id::text::bigint FROM events WHERE position = $1",
            &[&position],
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    match row {
        Some(row) => Ok(Order::new(row.get::<_, i64>(0), position)),
        None => Err(ApiError::Validation(format!(
            "no event has position {position}; use a position a command answered"
        ))),
    }
}

/// The projection's checkpoint; [`Order::START`] before its first event.
pub async fn checkpoint(client: &Object, projection: &str) -> Result<Order, ApiError> {
    let statement = client
        .prepare_cached(
            "SELECT last_transaction_id, last_position FROM projection_checkpoints WHERE projection = $1",
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    let row = client
        .query_opt(&statement, &[&projection])
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(row.map_or(Order::START, |r| Order::new(r.get(0), r.get(1))))
}
