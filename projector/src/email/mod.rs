//! Email: the `email-jobs` projection turns events into jobs (`projection`), workers claim
//! and send them (`worker`) through SMTP or files (`transport`) with the localised
//! `templates`; `cli` serves `projector email-jobs`.

pub mod cli;
pub mod projection;
pub mod templates;
pub mod transport;
pub mod worker;
