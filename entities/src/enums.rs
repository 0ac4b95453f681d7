use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Level of a grid unit in the administrative tree, root first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum UnitLevel {
    #[sea_orm(string_value = "city")]
    City,
    #[sea_orm(string_value = "county")]
    County,
    #[sea_orm(string_value = "township")]
    Township,
    #[sea_orm(string_value = "community")]
    Community,
    #[sea_orm(string_value = "grid")]
    Grid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[sea_orm(string_value = "normal")]
    Normal,
    #[sea_orm(string_value = "urgent")]
    Urgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[sea_orm(string_value = "grid_worker")]
    GridWorker,
    #[sea_orm(string_value = "dispatcher")]
    Dispatcher,
    #[sea_orm(string_value = "department_staff")]
    DepartmentStaff,
    #[sea_orm(string_value = "supervisor")]
    Supervisor,
    #[sea_orm(string_value = "admin")]
    Admin,
}

/// Why an SLA clock stopped. `None` on a stopped clock written before this was recorded reads
/// as goal met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ClockStop {
    /// The clock's goal was reached (reported in, contacted, resolved) — on time or late.
    #[sea_orm(string_value = "goal_met")]
    GoalMet,
    /// The ticket or dispatch ended without the goal (closure, cancellation, a return).
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// Where a mail of the outbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// Waiting for its next attempt.
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "sent")]
    Sent,
    /// Refused for good, or undelivered within `smtp.retention`; an admin may re-queue it.
    #[sea_orm(string_value = "dead")]
    Dead,
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    /// Not delivered within `webhooks.retention`; it may be redelivered.
    #[sea_orm(string_value = "failed")]
    Failed,
}
