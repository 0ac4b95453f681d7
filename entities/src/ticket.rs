use sea_orm::entity::prelude::*;

use crate::Priority;

/// 诉求工单. `status` and `channel` hold the texts of the domain enums.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub number: String,
    pub category_id: Uuid,
    pub priority: Priority,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub unit_id: Uuid,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub address: Option<String>,
    pub resident_name: Option<String>,
    pub resident_phone: Option<String>,
    pub channel: String,
    pub attachments: Json,
    pub filed_by: Uuid,
    pub status: String,
    pub version: i32,
    pub return_count: i32,
    pub needs_arbitration: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub first_dispatched_at: Option<DateTimeUtc>,
    pub first_contact_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    pub rating_due_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    /// The township and county the ticket's unit lies in (report groups).
    pub township_id: Option<Uuid>,
    pub county_id: Option<Uuid>,
    /// The resolve clock's deadline (moves with approved extensions).
    pub resolve_due_at: Option<DateTimeUtc>,
    /// Working time from the first dispatch to the latest resolution.
    pub resolve_working_seconds: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
