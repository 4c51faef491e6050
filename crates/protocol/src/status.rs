//! The statuses TaskRouter gives a task (`AssignmentStatus`) and a reservation
//! (`ReservationStatus`), as its REST API and callbacks write them. A worker has no status of
//! its own: its state is its Activity, named by each workspace, and that Activity's
//! `available` flag.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! status {
    ($(#[$meta:meta])* $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl $name {
            /// Every status, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The status as TaskRouter writes it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The status `text` names; `None` for anything else.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

status! {
    /// A task's `AssignmentStatus`.
    TaskStatus {
        Pending => "pending",
        Reserved => "reserved",
        Assigned => "assigned",
        Wrapping => "wrapping",
        Completed => "completed",
        Canceled => "canceled",
    }
}

status! {
    /// A reservation's `ReservationStatus`.
    ReservationStatus {
        Pending => "pending",
        Accepted => "accepted",
        Rejected => "rejected",
        Timeout => "timeout",
        Canceled => "canceled",
        Rescinded => "rescinded",
        Wrapping => "wrapping",
        Completed => "completed",
        /// Reached only through `reservation.failed` (no worker was assigned); the REST API
        /// never reports it.
        Failed => "failed",
    }
}

impl TaskStatus {
    /// Still waiting for a worker: may be reserved or canceled.
    pub fn is_open(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Reserved)
    }

    /// Ended: completed or canceled; nothing more should happen to the task.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Canceled)
    }
}

impl ReservationStatus {
    /// Ended: nothing more happens to the reservation.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReservationStatus::Rejected
                | ReservationStatus::Timeout
                | ReservationStatus::Canceled
                | ReservationStatus::Rescinded
                | ReservationStatus::Completed
                | ReservationStatus::Failed
        )
    }

    /// Still holds its worker: not yet answered, or accepted and not completed.
    pub fn is_live(self) -> bool {
        matches!(self, ReservationStatus::Pending | ReservationStatus::Accepted | ReservationStatus::Wrapping)
    }

    /// Accepted at some point: accepted, wrapping or completed.
    pub fn was_accepted(self) -> bool {
        matches!(
            self,
            ReservationStatus::Accepted | ReservationStatus::Wrapping | ReservationStatus::Completed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{ReservationStatus, TaskStatus};

    #[test]
    fn statuses_read_back_as_themselves_and_serialize_as_twilio_writes_them() {
        for &status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for &status in ReservationStatus::ALL {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::from_value::<ReservationStatus>(status.as_str().into()).unwrap(), status);
        }
        assert_eq!(TaskStatus::parse("Pending"), None);
        assert_eq!(
            format!("[{:<9}]", ReservationStatus::Timeout),
            "[timeout  ]",
            "widths apply, as to a str"
        );
    }

    #[test]
    fn only_completed_and_canceled_tasks_are_final_and_no_final_task_is_open() {
        let finals: Vec<TaskStatus> = TaskStatus::ALL.iter().copied().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [TaskStatus::Completed, TaskStatus::Canceled]);
        for &status in TaskStatus::ALL {
            assert!(!(status.is_final() && status.is_open()), "{status}");
        }
    }

    #[test]
    fn every_reservation_status_is_live_or_final_never_both() {
        for &status in ReservationStatus::ALL {
            assert_ne!(status.is_live(), status.is_final(), "{status}");
        }
    }
}
