//! Email: the `email-jobs` projection turns events into jobs (`projection`), workers claim
//! and send them (`worker`) through SMTP or files (`transport`) with the localised
//! `templates` (the membership emails' words in `membership_wording`, the password and
//! address links' in `link_wording`); `cli` serves
//! `projector email-jobs`.

pub mod cli;
pub mod files;
mod link_wording;
mod membership_wording;
mod notices;
pub mod projection;
pub mod templates;
pub mod transport;
pub mod worker;
