//! Twilio TaskRouter's protocol, typed: what its webhooks, Event Streams and Events API say,
//! parsed into values, and how their signatures are checked.
//!
//! Nothing here touches HTTP, storage or the clock: every function is a deterministic map from
//! bytes to values, so it can be unit-tested and fuzzed on its own.

pub mod cloud_event;
pub mod event_resource;
pub mod instruction;
pub mod signature;
pub mod stored_event;
pub mod timestamp;
pub mod webhook;

pub use timestamp::{OccurredAt, TimeSource};
pub use webhook::{Endpoint, FormParams, ParseError, WebhookFacts};
