//! TaskRouter's event types, named once: every `EventType` an event callback, an Event Streams
//! CloudEvent or the Events API can carry, plus `assignment` (the assignment callback, recorded
//! as an event of that type). A type TaskRouter adds later is not an error: it has no variant,
//! is recorded as sent, and reads as `None` here.

use std::fmt;

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// A TaskRouter event type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $(#[doc = concat!("`", $name, "`")] $variant,)*
        }

        impl EventType {
            /// Every known event type.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The type as TaskRouter writes it (`EventType` parameter, CloudEvent `type` suffix).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            /// The known type `name` is; `None` for one this version does not know.
            pub fn parse(name: &str) -> Option<EventType> {
                match name {
                    $($name => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    Assignment => "assignment",
    ActivityCreated => "activity.created",
    ActivityUpdated => "activity.updated",
    ActivityDeleted => "activity.deleted",
    ReservationCreated => "reservation.created",
    ReservationAccepted => "reservation.accepted",
    ReservationRejected => "reservation.rejected",
    ReservationTimeout => "reservation.timeout",
    ReservationCanceled => "reservation.canceled",
    ReservationRescinded => "reservation.rescinded",
    ReservationCompleted => "reservation.completed",
    ReservationFailed => "reservation.failed",
    ReservationWrapup => "reservation.wrapup",
    TaskCreated => "task.created",
    TaskUpdated => "task.updated",
    TaskCanceled => "task.canceled",
    TaskWrapup => "task.wrapup",
    TaskCompleted => "task.completed",
    TaskDeleted => "task.deleted",
    TaskSystemDeleted => "task.system-deleted",
    TaskTransferInitiated => "task.transfer-initiated",
    TaskTransferAttemptFailed => "task.transfer-attempt-failed",
    TaskTransferFailed => "task.transfer-failed",
    TaskTransferCanceled => "task.transfer-canceled",
    TaskTransferCompleted => "task.transfer-completed",
    TaskChannelCreated => "task-channel.created",
    TaskChannelUpdated => "task-channel.updated",
    TaskChannelDeleted => "task-channel.deleted",
    TaskQueueCreated => "task-queue.created",
    TaskQueueDeleted => "task-queue.deleted",
    TaskQueueEntered => "task-queue.entered",
    TaskQueueTimeout => "task-queue.timeout",
    TaskQueueMoved => "task-queue.moved",
    TaskQueueExpressionUpdated => "task-queue.expression.updated",
    WorkerCreated => "worker.created",
    WorkerActivityUpdate => "worker.activity.update",
    WorkerAttributesUpdate => "worker.attributes.update",
    WorkerCapacityUpdate => "worker.capacity.update",
    WorkerChannelAvailabilityUpdate => "worker.channel.availability.update",
    WorkerDeleted => "worker.deleted",
    WorkflowCreated => "workflow.created",
    WorkflowUpdated => "workflow.updated",
    WorkflowDeleted => "workflow.deleted",
    WorkflowEntered => "workflow.entered",
    WorkflowTargetMatched => "workflow.target-matched",
    WorkflowTimeout => "workflow.timeout",
    WorkflowSkipped => "workflow.skipped",
    WorkspaceCreated => "workspace.created",
}

impl EventType {
    /// Whether the type is about a reservation (`reservation.*`).
    pub fn is_reservation(self) -> bool {
        self.as_str().starts_with("reservation.")
    }

    /// Whether the task ends with it: completed, canceled, deleted by the API or by the system.
    pub fn ends_task(self) -> bool {
        matches!(
            self,
            EventType::TaskCompleted
                | EventType::TaskCanceled
                | EventType::TaskDeleted
                | EventType::TaskSystemDeleted
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::EventType;

    #[test]
    fn every_type_reads_back_as_itself_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for &event in EventType::ALL {
            assert_eq!(EventType::parse(event.as_str()), Some(event));
            assert!(names.insert(event.as_str()), "{event} twice");
        }
        assert_eq!(EventType::ALL.len(), 48);
    }

    #[test]
    fn an_unknown_type_is_none_not_an_error() {
        assert_eq!(EventType::parse("task.something-new"), None);
        assert_eq!(EventType::parse(""), None);
        assert_eq!(EventType::parse("Task.Created"), None, "TaskRouter's names are lower case");
    }

    #[test]
    fn kinds_of_types() {
        assert!(EventType::ReservationTimeout.is_reservation());
        assert!(!EventType::TaskQueueTimeout.is_reservation());
        assert!(EventType::TaskSystemDeleted.ends_task());
        assert!(!EventType::TaskWrapup.ends_task());
    }
}
