//! Response bodies: the API contract of DESIGN.md. Table models never leave the service layer raw.

use chrono::{DateTime, Utc};
use entities::{category, department, grid_unit, user};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::AppError,
    repo::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageRequest},
    service::routing::{Resolution, RoutingRule as RuleWithCoHandlers},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> List<T> {
    pub fn from_page<M>(page: Page<M>, f: impl FnMut(M) -> T) -> Self {
        let page = page.map(f);
        Self {
            items: page.items,
            next_cursor: page.next_cursor,
        }
    }
}

/// `limit` (1–200, default 50) and `cursor` (the previous page's `next_cursor`).
pub fn page_request(limit: Option<u64>, cursor: Option<&str>) -> Result<PageRequest, AppError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let after = cursor
        .map(|c| Uuid::parse_str(c).map_err(|_| AppError::invalid("cursor", "not a cursor this API issued")))
        .transpose()?;
    Ok(PageRequest { limit, after })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GridUnit {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    /// city, county, township, community or grid
    pub level: String,
    pub parent_id: Option<Uuid>,
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<grid_unit::Model> for GridUnit {
    fn from(m: grid_unit::Model) -> Self {
        Self {
            id: m.id,
            code: m.code,
            name: m.name,
            level: crate::service::grid_units::level_name(m.level).into(),
            parent_id: m.parent_id,
            boundary: m.boundary,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Department {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub unit_id: Uuid,
    pub email: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<department::Model> for Department {
    fn from(m: department::Model) -> Self {
        Self {
            id: m.id,
            code: m.code,
            name: m.name,
            unit_id: m.unit_id,
            email: m.email,
            active: m.active,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    /// normal or urgent
    #[schema(value_type = String)]
    pub default_priority: entities::Priority,
    pub auto_dispatch: bool,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<category::Model> for Category {
    fn from(m: category::Model) -> Self {
        Self {
            id: m.id,
            code: m.code,
            name: m.name,
            default_priority: m.default_priority,
            auto_dispatch: m.auto_dispatch,
            active: m.active,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingRule {
    pub id: Uuid,
    /// `null`: every category.
    pub category_id: Option<Uuid>,
    pub unit_id: Uuid,
    pub primary_department_id: Uuid,
    pub co_handler_department_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RuleWithCoHandlers> for RoutingRule {
    fn from(r: RuleWithCoHandlers) -> Self {
        Self {
            id: r.rule.id,
            category_id: r.rule.category_id,
            unit_id: r.rule.unit_id,
            primary_department_id: r.rule.primary_department_id,
            co_handler_department_ids: r.co_handler_department_ids,
            created_at: r.rule.created_at,
            updated_at: r.rule.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingResolution {
    pub category_id: Uuid,
    pub unit_id: Uuid,
    /// The winning rule; `null` when the ticket stays with the township dispatcher.
    pub rule_id: Option<Uuid>,
    pub primary_department_id: Option<Uuid>,
    pub co_handler_department_ids: Vec<Uuid>,
    /// The township whose dispatcher reviews the ticket.
    pub dispatcher_unit_id: Option<Uuid>,
    /// Every matching rule, most specific first (deepest unit, then exact category).
    pub candidates: Vec<RoutingRule>,
}

impl From<Resolution> for RoutingResolution {
    fn from(r: Resolution) -> Self {
        Self {
            category_id: r.category_id,
            unit_id: r.unit_id,
            rule_id: r.rule_id,
            primary_department_id: r.primary_department_id,
            co_handler_department_ids: r.co_handler_department_ids,
            dispatcher_unit_id: r.dispatcher_unit_id,
            candidates: r.candidates.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    /// grid_worker, dispatcher, department_staff, supervisor or admin
    pub role: String,
    pub unit_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            username: m.username,
            display_name: m.display_name,
            role: crate::service::role_name(m.role).into(),
            unit_id: m.unit_id,
            department_id: m.department_id,
            active: m.active,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}
