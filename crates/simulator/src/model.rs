//! The simulated TaskRouter resources (workspaces, activities, workers, queues, workflows,
//! tasks, reservations, events) as plain data. The engine owns and changes them; the REST API
//! renders them.

use std::collections::BTreeMap;
pub use taskrouter_protocol::{ReservationStatus, TaskStatus};

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Workspace {
    pub sid: String,
    pub friendly_name: String,
    pub event_callback_url: Option<String>,
    /// `EventsFilter`: the event types sent to `event_callback_url` (`None`: every type).
    pub events_filter: Option<String>,
    pub default_activity_sid: String,
    pub timeout_activity_sid: String,
    pub date_created_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Activity {
    pub sid: String,
    pub workspace_sid: String,
    pub friendly_name: String,
    pub available: bool,
    pub date_created_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Worker {
    pub sid: String,
    pub workspace_sid: String,
    pub friendly_name: String,
    pub attributes: Value,
    pub activity_sid: String,
    pub activity_changed_ms: i64,
    /// The reservation that occupies this worker (pending, accepted or wrapping): capacity 1.
    pub current_reservation: Option<String>,
    pub date_created_ms: i64,
    pub date_updated_ms: i64,
    pub version: u64,
}

#[derive(Debug, Clone)]
pub struct TaskQueue {
    pub sid: String,
    pub workspace_sid: String,
    pub friendly_name: String,
    /// Target expression over worker attributes.
    pub target_workers: String,
    /// Reservations a task may have at once; above 1 the losers are rescinded.
    pub max_reserved_workers: u32,
    /// Where a worker goes when it accepts (e.g. Busy); `None` keeps its activity.
    pub assignment_activity_sid: Option<String>,
    pub date_created_ms: i64,
}

/// One routing step: tasks whose attributes match `expression` go to `queue_sid`.
#[derive(Debug, Clone)]
pub struct WorkflowFilter {
    pub friendly_name: String,
    pub expression: String,
    pub queue_sid: String,
    /// Seconds in this target without acceptance before `workflow.timeout` cancels the task.
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub sid: String,
    pub workspace_sid: String,
    pub friendly_name: String,
    pub assignment_callback_url: Option<String>,
    /// Called when a call to `assignment_callback_url` fails.
    pub fallback_assignment_callback_url: Option<String>,
    /// Seconds a reservation stays pending before `reservation.timeout`.
    pub task_reservation_timeout: u64,
    pub filters: Vec<WorkflowFilter>,
    pub default_queue_sid: String,
    pub date_created_ms: i64,
}

impl Workflow {
    /// The routing configuration as TaskRouter's JSON document.
    pub fn configuration(&self) -> Value {
        let filters: Vec<Value> = self
            .filters
            .iter()
            .map(|f| {
                let mut target = serde_json::json!({"queue": f.queue_sid});
                if let Some(timeout) = f.timeout {
                    target["timeout"] = timeout.into();
                }
                serde_json::json!({"filter_friendly_name": f.friendly_name, "expression": f.expression, "targets": [target]})
            })
            .collect();
        serde_json::json!({"task_routing": {"filters": filters, "default_filter": {"queue": self.default_queue_sid}}})
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub sid: String,
    pub workspace_sid: String,
    pub workflow_sid: String,
    pub queue_sid: String,
    /// The matched workflow filter's name and its target timeout.
    pub filter_name: Option<String>,
    pub filter_timeout: Option<u64>,
    pub attributes: String,
    pub priority: i64,
    /// TTL in seconds.
    pub timeout: u64,
    pub status: TaskStatus,
    pub reason: Option<String>,
    pub date_created_ms: i64,
    pub date_updated_ms: i64,
    pub queue_entered_ms: i64,
    pub version: u64,
    /// Position in creation order, for FIFO routing.
    pub sequence: u64,
    /// Reservations of this task rejected so far.
    pub rejections: u32,
}

impl Task {
    pub fn attributes_json(&self) -> Value {
        serde_json::from_str(&self.attributes).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub sid: String,
    pub workspace_sid: String,
    pub task_sid: String,
    pub worker_sid: String,
    pub status: ReservationStatus,
    pub date_created_ms: i64,
    pub date_updated_ms: i64,
    pub version: u64,
}

/// One event, as the Events REST resource and the event callback both describe it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub sid: String,
    pub workspace_sid: String,
    pub event_type: String,
    pub description: String,
    pub resource_type: String,
    pub resource_sid: String,
    pub date_ms: i64,
    /// The callback's form parameters, in the order sent.
    pub params: Vec<(String, String)>,
}

impl EventRecord {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `event_data` as the REST API shows it: the callback fields in snake_case; task
    /// attributes redacted (`{}`) when `redacted` (older than 43,200 minutes).
    pub fn event_data(&self, redacted: bool) -> BTreeMap<String, String> {
        const COMMON: &[&str] = &[
            "EventType",
            "EventDescription",
            "ResourceType",
            "ResourceSid",
            "Timestamp",
            "TimestampMs",
            "Sid",
        ];
        self.params
            .iter()
            .filter(|(name, _)| !COMMON.contains(&name.as_str()))
            .map(|(name, value)| {
                let value =
                    if redacted && name == "TaskAttributes" { "{}".to_string() } else { value.clone() };
                (snake_case(name), value)
            })
            .collect()
    }
}

/// `WorkerTimeInPreviousActivityMs` → `worker_time_in_previous_activity_ms`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn snake_cases_callback_names() {
        assert_eq!(
            super::snake_case("WorkerTimeInPreviousActivityMs"),
            "worker_time_in_previous_activity_ms"
        );
        assert_eq!(super::snake_case("TaskSid"), "task_sid");
    }
}
