//! The ticket and dispatch state machines: one table each deciding which action is legal in
//! which state, and where it leads.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    /// Waiting for the township dispatcher (new, or back after a 退单).
    Filed,
    Dispatched,
    InProgress,
    Resolved,
    Closed,
    Cancelled,
    /// 并单: a duplicate merged into another ticket, which carries the work on.
    Merged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketAction {
    Dispatch,
    Whistle,
    /// Every primary dispatch has reported in (报到).
    StartWork,
    /// The primary dispatch came back (退单): the dispatcher decides again.
    ReturnToDispatcher,
    /// The dispatcher refused a 退单 and sent the work back to the department.
    ForceBack,
    Progress,
    Resolve,
    RateSatisfied,
    /// 差评: rectification with the same departments.
    Reopen,
    AutoClose,
    Cancel,
    /// The dispatcher merges a duplicate into another open ticket (并单).
    Merge,
}

/// Where `action` takes a ticket in `from`, or `None` when it is not allowed there.
pub fn ticket_transition(from: TicketStatus, action: TicketAction) -> Option<TicketStatus> {
    use TicketAction as A;
    use TicketStatus as S;
    match (from, action) {
        (S::Filed, A::Dispatch) => Some(S::Dispatched),
        (S::Dispatched | S::InProgress, A::Whistle) => Some(from),
        (S::Dispatched, A::StartWork) => Some(S::InProgress),
        (S::Dispatched | S::InProgress, A::ReturnToDispatcher) => Some(S::Filed),
        (S::Filed, A::ForceBack) => Some(S::Dispatched),
        (S::Dispatched | S::InProgress | S::Resolved, A::Progress) => Some(from),
        (S::InProgress, A::Resolve) => Some(S::Resolved),
        (S::Resolved, A::RateSatisfied | A::AutoClose) => Some(S::Closed),
        (S::Resolved, A::Reopen) => Some(S::InProgress),
        (S::Filed | S::Dispatched | S::InProgress, A::Cancel) => Some(S::Cancelled),
        (S::Filed | S::Dispatched | S::InProgress, A::Merge) => Some(S::Merged),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispatchStatus {
    Pending,
    Acknowledged,
    Returned,
    Resolved,
    /// The ticket was cancelled or the dispatch superseded; nothing more to do.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispatchAction {
    Acknowledge,
    Return,
    /// The dispatcher refused the return: the department must handle it after all.
    RefuseReturn,
    Progress,
    Resolve,
    /// 差评: the resolved work is reopened for rectification.
    Reopen,
    Cancel,
}

pub fn dispatch_transition(from: DispatchStatus, action: DispatchAction) -> Option<DispatchStatus> {
    use DispatchAction as A;
    use DispatchStatus as S;
    match (from, action) {
        (S::Pending, A::Acknowledge) => Some(S::Acknowledged),
        (S::Pending, A::Return) => Some(S::Returned),
        (S::Returned, A::RefuseReturn) => Some(S::Pending),
        (S::Acknowledged, A::Progress) => Some(S::Acknowledged),
        (S::Acknowledged, A::Resolve) => Some(S::Resolved),
        (S::Resolved, A::Reopen) => Some(S::Acknowledged),
        (S::Pending | S::Acknowledged, A::Cancel) => Some(S::Cancelled),
        _ => None,
    }
}

impl DispatchStatus {
    /// Still work to do for the department.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Acknowledged)
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Filed => "filed",
            Self::Dispatched => "dispatched",
            Self::InProgress => "in_progress",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
            Self::Merged => "merged",
        })
    }
}

impl fmt::Display for DispatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Acknowledged => "acknowledged",
            Self::Returned => "returned",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
        })
    }
}

impl fmt::Display for TicketAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dispatch => "dispatch",
            Self::Whistle => "whistle",
            Self::StartWork => "start work",
            Self::ReturnToDispatcher => "return to the dispatcher",
            Self::ForceBack => "refuse the return",
            Self::Progress => "post progress",
            Self::Resolve => "resolve",
            Self::RateSatisfied => "rate",
            Self::Reopen => "rate",
            Self::AutoClose => "auto-close",
            Self::Cancel => "cancel",
            Self::Merge => "merge",
        })
    }
}

impl fmt::Display for DispatchAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Acknowledge => "acknowledge",
            Self::Return => "return",
            Self::RefuseReturn => "refuse the return of",
            Self::Progress => "post progress on",
            Self::Resolve => "resolve",
            Self::Reopen => "reopen",
            Self::Cancel => "cancel",
        })
    }
}

/// 好差评: 非常满意 5 … 非常不满意 1; 2 or less is a 差评 that reopens the ticket.
pub fn is_bad_rating(score: u8) -> bool {
    score <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [TicketStatus; 7] = [
        TicketStatus::Filed,
        TicketStatus::Dispatched,
        TicketStatus::InProgress,
        TicketStatus::Resolved,
        TicketStatus::Closed,
        TicketStatus::Cancelled,
        TicketStatus::Merged,
    ];
    const ACTIONS: [TicketAction; 12] = [
        TicketAction::Dispatch,
        TicketAction::Whistle,
        TicketAction::StartWork,
        TicketAction::ReturnToDispatcher,
        TicketAction::ForceBack,
        TicketAction::Progress,
        TicketAction::Resolve,
        TicketAction::RateSatisfied,
        TicketAction::Reopen,
        TicketAction::AutoClose,
        TicketAction::Cancel,
        TicketAction::Merge,
    ];

    /// The whole table, written out: every (state, action) pair and its outcome.
    #[test]
    fn ticket_table_is_exactly_the_lifecycle() {
        use TicketAction as A;
        use TicketStatus as S;
        let legal = [
            (S::Filed, A::Dispatch, S::Dispatched),
            (S::Filed, A::ForceBack, S::Dispatched),
            (S::Filed, A::Cancel, S::Cancelled),
            (S::Filed, A::Merge, S::Merged),
            (S::Dispatched, A::Whistle, S::Dispatched),
            (S::Dispatched, A::StartWork, S::InProgress),
            (S::Dispatched, A::ReturnToDispatcher, S::Filed),
            (S::Dispatched, A::Progress, S::Dispatched),
            (S::Dispatched, A::Cancel, S::Cancelled),
            (S::Dispatched, A::Merge, S::Merged),
            (S::InProgress, A::Whistle, S::InProgress),
            (S::InProgress, A::ReturnToDispatcher, S::Filed),
            (S::InProgress, A::Progress, S::InProgress),
            (S::InProgress, A::Resolve, S::Resolved),
            (S::InProgress, A::Cancel, S::Cancelled),
            (S::InProgress, A::Merge, S::Merged),
            (S::Resolved, A::Progress, S::Resolved),
            (S::Resolved, A::RateSatisfied, S::Closed),
            (S::Resolved, A::Reopen, S::InProgress),
            (S::Resolved, A::AutoClose, S::Closed),
        ];
        for from in STATUSES {
            for action in ACTIONS {
                let expected = legal.iter().find(|(f, a, _)| *f == from && *a == action).map(|(_, _, to)| *to);
                assert_eq!(ticket_transition(from, action), expected, "{from} + {action:?}");
            }
        }
    }

    #[test]
    fn closed_cancelled_and_merged_are_final() {
        for action in ACTIONS {
            assert_eq!(ticket_transition(TicketStatus::Closed, action), None);
            assert_eq!(ticket_transition(TicketStatus::Cancelled, action), None);
            assert_eq!(ticket_transition(TicketStatus::Merged, action), None);
        }
        for status in STATUSES {
            assert_eq!(
                status.is_terminal(),
                ACTIONS.iter().all(|a| ticket_transition(status, *a).is_none()),
                "{status}"
            );
        }
    }

    #[test]
    fn dispatch_table() {
        use DispatchAction as A;
        use DispatchStatus as S;
        let statuses = [S::Pending, S::Acknowledged, S::Returned, S::Resolved, S::Cancelled];
        let actions = [A::Acknowledge, A::Return, A::RefuseReturn, A::Progress, A::Resolve, A::Reopen, A::Cancel];
        let legal = [
            (S::Pending, A::Acknowledge, S::Acknowledged),
            (S::Pending, A::Return, S::Returned),
            (S::Pending, A::Cancel, S::Cancelled),
            (S::Returned, A::RefuseReturn, S::Pending),
            (S::Acknowledged, A::Progress, S::Acknowledged),
            (S::Acknowledged, A::Resolve, S::Resolved),
            (S::Acknowledged, A::Cancel, S::Cancelled),
            (S::Resolved, A::Reopen, S::Acknowledged),
        ];
        for from in statuses {
            for action in actions {
                let expected = legal.iter().find(|(f, a, _)| *f == from && *a == action).map(|(_, _, to)| *to);
                assert_eq!(dispatch_transition(from, action), expected, "{from} + {action:?}");
            }
        }
        assert!(S::Pending.is_open() && S::Acknowledged.is_open());
        assert!(!S::Returned.is_open() && !S::Resolved.is_open() && !S::Cancelled.is_open());
    }

    #[test]
    fn bad_ratings() {
        assert!(is_bad_rating(1) && is_bad_rating(2));
        assert!(!is_bad_rating(3) && !is_bad_rating(4) && !is_bad_rating(5));
    }
}

/// Parses a stored status; every variant's text is its `Display`.
fn parse_from<T: fmt::Display + Copy>(all: &[T], text: &str) -> Option<T> {
    all.iter().copied().find(|v| v.to_string() == text)
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 7] =
        [Self::Filed, Self::Dispatched, Self::InProgress, Self::Resolved, Self::Closed, Self::Cancelled, Self::Merged];

    pub fn parse(text: &str) -> Option<Self> {
        parse_from(&Self::ALL, text)
    }

    /// Closed, cancelled or merged: the ticket has ended and nothing on it runs again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Closed | Self::Cancelled | Self::Merged)
    }
}

impl DispatchStatus {
    pub const ALL: [DispatchStatus; 5] =
        [Self::Pending, Self::Acknowledged, Self::Returned, Self::Resolved, Self::Cancelled];

    pub fn parse(text: &str) -> Option<Self> {
        parse_from(&Self::ALL, text)
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for status in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(&status.to_string()), Some(status));
        }
        for status in DispatchStatus::ALL {
            assert_eq!(DispatchStatus::parse(&status.to_string()), Some(status));
        }
        assert_eq!(TicketStatus::parse("reopened"), None);
    }
}

/// How a request reached the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    GridApp,
    Hotline,
    Web,
    Open311,
    /// Filed by a community sensor's alarm (MQTT), never through the API.
    Sensor,
}

impl Channel {
    pub const ALL: [Channel; 5] = [Self::GridApp, Self::Hotline, Self::Web, Self::Open311, Self::Sensor];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GridApp => "grid_app",
            Self::Hotline => "hotline",
            Self::Web => "web",
            Self::Open311 => "open311",
            Self::Sensor => "sensor",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchRole {
    Primary,
    CoHandler,
}

impl DispatchRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::CoHandler => "co_handler",
        }
    }
}

/// Which dispatch carries a ticket's responsibility (首办负责): its primary dispatch that was
/// neither returned nor cancelled — at most one at a time. Reports, the overdue list,
/// escalation mails and supervision orders all name this department; this is the one
/// definition.
pub const RESPONSIBLE_STATUSES: [DispatchStatus; 3] =
    [DispatchStatus::Pending, DispatchStatus::Acknowledged, DispatchStatus::Resolved];

pub fn holds_responsibility(role: &str, status: &str) -> bool {
    role == DispatchRole::Primary.as_str() && RESPONSIBLE_STATUSES.iter().any(|s| s.to_string() == status)
}

/// The timeline's event kinds.
pub mod event {
    /// Declares each kind and `ALL` together, so a new kind cannot be missing from the list
    /// that the event stream's `?kind=` and webhook subscriptions accept.
    macro_rules! kinds {
        ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
            $($(#[$doc])* pub const $name: &str = $value;)*
            /// Every kind, in declaration order.
            pub const ALL: &[&str] = &[$($name),*];
        };
    }

    kinds! {
        FILED = "filed";
        DISPATCHED = "dispatched";
        WHISTLED = "whistled";
        ACKNOWLEDGED = "acknowledged";
        WORK_STARTED = "work_started";
        RETURNED = "returned";
        ARBITRATION_REQUESTED = "arbitration_requested";
        RETURN_REJECTED = "return_rejected";
        PROGRESS = "progress";
        DISPATCH_RESOLVED = "dispatch_resolved";
        RESOLVED = "resolved";
        RATED = "rated";
        REOPENED = "reopened";
        CLOSED = "closed";
        AUTO_CLOSED = "auto_closed";
        CANCELLED = "cancelled";
        SLA_WARNING = "sla_warning";
        SLA_BREACHED = "sla_breached";
        ESCALATED = "escalated";
        SUPERVISION_ORDERED = "supervision_ordered";
        SUPERVISION_REPLIED = "supervision_replied";
        EXTENSION_REQUESTED = "extension_requested";
        EXTENSION_DECIDED = "extension_decided";
        PERSONAL_DATA_ERASED = "personal_data_erased";
        /// Photos or documents attached (at filing, or as a department's evidence).
        ATTACHMENTS_ADDED = "attachments_added";
        /// Resident-supplied attachments removed with an erasure of personal data.
        ATTACHMENTS_ERASED = "attachments_erased";
        /// On the duplicate: it was merged into another ticket (并单).
        MERGED = "merged";
        /// On the survivor: a duplicate was merged into it.
        DUPLICATE_MERGED = "duplicate_merged";
        /// A sensor alarm on a ticket the device's alarm filed (the first one included).
        SENSOR_ALARM = "sensor_alarm";
        /// The sensor reports the condition over; a person still resolves the ticket.
        SENSOR_CLEAR = "sensor_clear";
        /// A silent device was heard from again.
        SENSOR_ONLINE = "sensor_online";
    }
}
