//! Pure TaskRouter domain types: parsing webhook bodies into facts, timestamps, SIDs.
//!
//! Nothing here touches HTTP, storage or the clock: every function is a deterministic map from
//! bytes to values, so it can be unit-tested and fuzzed on its own.

pub mod cloud_event;
pub mod event_resource;
pub mod instruction;
pub mod stored_event;
pub mod timestamp;
pub mod webhook;

pub use timestamp::{OccurredAt, TimeSource};
pub use webhook::{Endpoint, FormParams, ParseError, WebhookFacts};
