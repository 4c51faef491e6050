//! Twilio TaskRouter's protocol, typed: what its webhooks, Event Streams and Events API say,
//! parsed into values, and how their signatures are checked.
//!
//! Nothing here touches HTTP, storage or the clock: every function is a deterministic map from
//! bytes to values, so it can be unit-tested and fuzzed on its own.

pub mod cloud_event;
pub mod event_resource;
pub mod event_type;
pub mod instruction;
pub mod sid;
pub mod signature;
pub mod status;
pub mod stored_event;
pub mod timestamp;
pub mod webhook;

pub use event_type::EventType;
pub use sid::{
    AccountSid, ActivitySid, EventSid, ReservationSid, SidError, TaskChannelSid, TaskQueueSid, TaskSid,
    WorkerSid, WorkflowSid, WorkspaceSid,
};
pub use status::{ReservationStatus, TaskStatus};
pub use timestamp::{OccurredAt, TimeSource};
pub use webhook::{Endpoint, FormParams, ParseError, WebhookFacts};
