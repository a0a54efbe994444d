//! Email: the `email-jobs` projection turns events into jobs (`projection`), workers claim
//! and send them (`worker`) through SMTP or files (`transport`) with the localised
//! `templates` (the membership emails' words in `membership_wording`, the password and
//! address links' in `link_wording`, security alerts combined under pressure in
//! `combined_wording`, the admins' webhook notice in `webhook_wording`); `budget` caps every kind of mail per inbox and per tenant, and
//! `foreign_text` makes the names people chose harmless in mail; `cli` serves
//! `projector email-jobs`.

mod budget;
pub mod cli;
mod combined_wording;
pub mod files;
pub mod foreign_text;
mod link_wording;
mod membership_wording;
mod notices;
pub mod projection;
pub mod templates;
pub mod transport;
mod webhook_wording;
pub mod worker;
