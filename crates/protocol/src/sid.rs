//! TaskRouter's SIDs: two letters naming the resource and 32 lowercase hex digits. Each
//! resource's SID is a type of its own, so a worker's SID cannot be passed where a task's is
//! expected; parsing one checks its prefix and form.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a SID of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {kind} SID ({prefix} and 32 hex digits)")]
pub struct SidError {
    pub value: String,
    pub kind: &'static str,
    pub prefix: &'static str,
}

/// Whether `value` has a SID's form with `prefix`: the prefix, then 32 lowercase hex digits.
pub fn has_form(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value.as_bytes()[2..].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Whether `value` looks like any SID: two uppercase letters, then 32 hex digits (either case,
/// as some tools print them).
pub fn looks_like_any(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 34
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..].iter().all(u8::is_ascii_hexdigit)
}

macro_rules! sids {
    ($($(#[$meta:meta])* $name:ident => $prefix:literal, $kind:literal;)*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The two letters every SID of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// `value` as this kind of SID.
            ///
            /// # Errors
            /// When it is not the prefix followed by 32 lowercase hex digits.
            pub fn parse(value: &str) -> Result<Self, SidError> {
                if has_form(value, $prefix) {
                    Ok(Self(value.to_string()))
                } else {
                    Err(SidError { value: value.to_string(), kind: $kind, prefix: $prefix })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = SidError;

            fn from_str(value: &str) -> Result<Self, SidError> {
                Self::parse(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(&value).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

sids! {
    /// A Twilio account (`AC…`).
    AccountSid => "AC", "account";
    /// A TaskRouter Workspace (`WS…`).
    WorkspaceSid => "WS", "workspace";
    /// A Workflow (`WW…`).
    WorkflowSid => "WW", "workflow";
    /// A TaskQueue (`WQ…`).
    TaskQueueSid => "WQ", "task queue";
    /// A Task (`WT…`).
    TaskSid => "WT", "task";
    /// A Reservation (`WR…`).
    ReservationSid => "WR", "reservation";
    /// A Worker (`WK…`).
    WorkerSid => "WK", "worker";
    /// An Activity (`WA…`).
    ActivitySid => "WA", "activity";
    /// A TaskChannel (`TC…`).
    TaskChannelSid => "TC", "task channel";
    /// An event (`EV…`): what deduplicates one fact arriving by several paths.
    EventSid => "EV", "event";
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "WT0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sid_parses_only_as_its_own_kind() {
        assert_eq!(TaskSid::parse(TASK).unwrap().as_str(), TASK);
        let wrong = WorkerSid::parse(TASK).unwrap_err();
        assert_eq!(wrong.to_string(), format!("{TASK:?} is not a worker SID (WK and 32 hex digits)"));
        assert!(TaskSid::parse("WT0123").is_err());
        assert!(TaskSid::parse("WT0123456789ABCDEF0123456789abcdef").is_err(), "Twilio writes lowercase hex");
        assert!(TaskSid::parse("WTé123456789abcdef0123456789abcde").is_err());
    }

    #[test]
    fn sids_serialize_as_strings_and_refuse_the_wrong_kind() {
        let task: TaskSid = serde_json::from_value(TASK.into()).unwrap();
        assert_eq!(serde_json::to_value(&task).unwrap(), TASK);
        assert!(serde_json::from_value::<ReservationSid>(TASK.into()).is_err());
    }

    #[test]
    fn any_sid_is_recognised_by_its_form() {
        assert!(looks_like_any(TASK));
        assert!(looks_like_any("WT0123456789ABCDEF0123456789ABCDEF"));
        assert!(!looks_like_any("wt0123456789abcdef0123456789abcdef"));
        assert!(!looks_like_any("WT0123456789abcdef0123456789abcdeg"));
        assert!(!looks_like_any("WT"));
    }
}
