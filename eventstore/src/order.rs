//! The order in which events are published: by the id of the transaction that appended
//! them, then by position (ADR 2). Positions alone are not an order a reader can follow,
//! since a transaction that took a lower position may commit after one that took a higher.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where an event stands in publication order. Compared as `(transaction_id, position)`.
/// Serialised as the pair `[transaction_id, position]` (the form checkpoints are stored in).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(from = "(i64, i64)", into = "(i64, i64)")]
pub struct Order {
    pub transaction_id: i64,
    pub position: i64,
}

impl Order {
    /// Before every event.
    pub const START: Order = Order {
        transaction_id: 0,
        position: 0,
    };

    pub const fn new(transaction_id: i64, position: i64) -> Self {
        Order {
            transaction_id,
            position,
        }
    }
}

impl From<(i64, i64)> for Order {
    fn from((transaction_id, position): (i64, i64)) -> Self {
        Order {
            transaction_id,
            position,
        }
    }
}

impl From<Order> for (i64, i64) {
    fn from(order: Order) -> Self {
        (order.transaction_id, order.position)
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transaction_id, self.position)
    }
}

/// What to read from the store in publication order.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadRange {
    /// Only events after this one.
    pub after: Order,
    /// Only events up to and including this one; otherwise up to the visibility horizon.
    pub up_to: Option<Order>,
    /// Only this tenant's events.
    pub tenant_id: Option<Uuid>,
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_orders_before_the_position() {
        assert!(Order::new(1, 9) < Order::new(2, 3));
        assert!(Order::new(2, 3) < Order::new(2, 4));
        assert_eq!(Order::START, Order::default());
    }

    #[test]
    fn an_order_is_stored_as_the_pair_it_replaced() {
        let text = serde_json::to_string(&Order::new(7, 42)).expect("serialises");
        assert_eq!(text, "[7,42]");
        let back: Order = serde_json::from_str("[7,42]").expect("parses");
        assert_eq!(back, Order::new(7, 42));
    }
}
