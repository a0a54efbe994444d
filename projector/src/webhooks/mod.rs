//! Webhooks (ADR 0028): the `webhook-deliveries` projection keeps each tenant's webhooks as of
//! the event it is at and queues one delivery per matching event and webhook (`projection`);
//! workers sign and send them, in order per webhook, with backoff, until delivered or dead
//! (`worker`); a webhook failing for too long is turned off (`disable`).

pub mod cli;
pub mod disable;
pub mod projection;
pub mod worker;
