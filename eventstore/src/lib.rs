//! The Postgres event store.
//!
//! A command works in one of two kinds of unit, and the kind is its type: a [`Transaction`]
//! (its own database transaction, in which it may lock, reserve unique values, claim an
//! idempotency key, append to several streams and erase a subject, all or nothing) or a
//! [`Grouped`] unit (it only loads streams and appends once, so its append may join the
//! process's group commit). Both read through a [`Reader`]. Personal data is sealed on the
//! way in and opened on the way out, here and only here.
//!
//! Each concern has its own module: [`order`] (the publication order), [`recorded`] (the
//! stored event and its envelope), [`upcast`], `rows` (decoding what Postgres answers),
//! `sealing` and `data_keys` (personal data), `read` (ordered reads for the relay and
//! tools), `append`, `group_commit`, `idempotency`, `reservations`, `erasure`, `kept` (the
//! states folded by earlier commands), `forget` (what is kept of a subject another process
//! erased), `aggregate` (folding a stream into a state), `stream`
//! (versions), `reader`, `unit` (the two kinds of unit) and `store` (the handle).

mod aggregate;
mod append;
pub mod contract;
mod data_keys;
mod erasure;
mod error;
mod forget;
pub mod group_commit;
mod idempotency;
mod imports;
mod kept;
pub mod order;
pub mod public;
mod read;
mod reader;
pub mod recorded;
mod reservations;
mod resets;
mod rows;
mod sealing;
mod store;
mod stream;
mod unit;
pub mod upcast;

pub use aggregate::Aggregate;
pub use append::Changes;
pub use data_keys::decrypt_personal_data;
pub use error::StoreError;
pub use forget::ERASURES_CHANNEL;
pub use idempotency::IdempotencyClaim;
pub use order::{Order, ReadRange};
pub use read::{fold_stream, load_event, load_stream, read_in_order};
pub use reader::{Reader, load_members};
pub use recorded::{DecodeError, EventMetadata, RecordedEvent};
pub use reservations::{EMAIL, INVITATION};
pub use store::{EventStore, Unit};
pub use stream::{AppendedEvent, ExpectedVersion, Loaded};
pub use unit::{Grouped, Transaction};
