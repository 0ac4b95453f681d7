//! User accounts: role, home unit or department, password, active flag.

use entities::{Role, UnitLevel, department, grid_unit, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Query,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use serde_json::json;

use super::{
    audit::{self, Entry},
    ensure_unique, found, nullable, referenced, require,
};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        password,
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
    repo::{
        self,
        page::{self, Page, PageRequest},
        tickets::Scope,
    },
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    #[schema(value_type = String, example = "grid_worker")]
    pub role: Role,
    /// Home unit: the grid of a grid worker, the township of a dispatcher, the county or city of a supervisor.
    pub unit_id: Option<Uuid>,
    /// The department of department staff.
    pub department_id: Option<Uuid>,
    pub password: String,
    /// Where escalations for this user's role reach them.
    pub email: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    pub display_name: Option<String>,
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub unit_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub department_id: Option<Option<Uuid>>,
    /// A new password; ends every session of the user.
    pub password: Option<String>,
    /// `false` disables the account and ends its sessions.
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
}

#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub unit: Option<Uuid>,
    pub department: Option<Uuid>,
    pub active: Option<bool>,
    pub username: Option<String>,
}

fn yes() -> bool {
    true
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewUser) -> AppResult<user::Model> {
    create_account(ctx, caller, input, forbidden_passwords(ctx)).await
}

/// The demo seed's way in: the demo accounts are the only ones that may carry the published
/// demo password (`demo.password`); every other account is refused it.
pub async fn create_demo_account(ctx: &AppContext, caller: &Caller, input: NewUser) -> AppResult<user::Model> {
    create_account(ctx, caller, input, password::Forbidden::default()).await
}

fn forbidden_passwords(ctx: &AppContext) -> password::Forbidden<'_> {
    password::Forbidden { demo_password: Some(&ctx.settings.demo.password) }
}

async fn create_account(
    ctx: &AppContext,
    caller: &Caller,
    input: NewUser,
    forbidden: password::Forbidden<'_>,
) -> AppResult<user::Model> {
    require(caller, Permission::ManageUsers)?;
    let mut errors = FieldErrors::new();
    let username = username(&mut errors, &input.username);
    let display_name = errors.text("display_name", &input.display_name, 100);
    let email = input.email.as_deref().map(|e| errors.email("email", e));
    if let Some(problem) = password::policy_violation(&username, &input.password, forbidden) {
        errors.add("password", problem);
    }
    errors.into_result()?;
    let password_hash = hash(&input.password)?;

    let txn = begin_write(&ctx.db).await?;
    ensure_unique::<user::Entity>(&txn, user::Column::Username, &username, None, |m| m.id, "user").await?;
    check_home(&txn, input.role, input.unit_id, input.department_id).await?;
    let now = ctx.clock.now();
    let created = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(username),
        display_name: Set(display_name),
        role: Set(input.role),
        unit_id: Set(input.unit_id),
        department_id: Set(input.department_id),
        password_hash: Set(password_hash),
        email: Set(email),
        failed_logins: Set(0),
        locked_until: Set(None),
        active: Set(input.active),

        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let detail = json!({"change": "created", "username": created.username, "role": super::role_name(created.role), "active": created.active});
    audit::record(&txn, Entry::by(caller, "user_changed", "user", created.id, detail).in_unit(created.unit_id), now)
        .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn update(ctx: &AppContext, caller: &Caller, id: Uuid, changes: UserChanges) -> AppResult<user::Model> {
    require(caller, Permission::ManageUsers)?;
    let txn = begin_write(&ctx.db).await?;
    let current = found::<user::Entity>(&txn, id, "user").await?;
    let mut errors = FieldErrors::new();
    let display_name = changes.display_name.as_deref().map(|n| errors.text("display_name", n, 100));
    let email = changes.email.clone().map(|e| e.map(|e| errors.email("email", &e)));
    if let Some(new_password) = &changes.password
        && let Some(problem) = password::policy_violation(&current.username, new_password, forbidden_passwords(ctx))
    {
        errors.add("password", problem);
    }
    errors.into_result()?;

    let role = changes.role.unwrap_or(current.role);
    let unit_id = changes.unit_id.unwrap_or(current.unit_id);
    let department_id = changes.department_id.unwrap_or(current.department_id);
    check_home(&txn, role, unit_id, department_id).await?;

    let ends_sessions = changes.password.is_some() || changes.active == Some(false);
    let mut row: user::ActiveModel = current.into();
    if let Some(display_name) = display_name {
        row.display_name = Set(display_name);
    }
    row.role = Set(role);
    row.unit_id = Set(unit_id);
    row.department_id = Set(department_id);
    if let Some(new_password) = &changes.password {
        row.password_hash = Set(hash(new_password)?);
    }
    if let Some(active) = changes.active {
        row.active = Set(active);
    }
    if let Some(email) = email {
        row.email = Set(email);
    }

    let now = ctx.clock.now();
    row.updated_at = Set(now);
    let updated = row.update(&txn).await?;
    if ends_sessions {
        repo::tokens::revoke_all_for_user(&txn, id, now).await?;
    }
    let changed: Vec<&str> = [
        ("display_name", changes.display_name.is_some()),
        ("role", changes.role.is_some()),
        ("unit_id", changes.unit_id.is_some()),
        ("department_id", changes.department_id.is_some()),
        ("password", changes.password.is_some()),
        ("active", changes.active.is_some()),
        ("email", changes.email.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    let detail = json!({"change": "updated", "fields": changed, "role": super::role_name(updated.role), "active": updated.active});
    audit::record(&txn, Entry::by(caller, "user_changed", "user", id, detail).in_unit(updated.unit_id), now).await?;
    txn.commit().await?;
    // Sessions ended, or role and home changed: this process stops trusting the old ones now.
    ctx.tokens.forget_user(id);
    Ok(updated)
}

/// Users are never deleted — tickets and timelines name them — so DELETE disables.
pub async fn disable(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<user::Model> {
    let changes = UserChanges { active: Some(false), ..Default::default() };
    update(ctx, caller, id, changes).await
}

/// One user, if the caller's jurisdiction covers them; otherwise 404 like a user that does not exist.
pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<user::Model> {
    require(caller, Permission::ReadUsers)?;
    user::Entity::find_by_id(id)
        .filter(readable_by(ctx, caller).await?)
        .one(&ctx.db)
        .await?
        .ok_or_else(|| AppError::not_found("user"))
}

/// The users a caller may read, in the jurisdiction tickets use (`Viewer::scope`): admins
/// everyone; supervisors (and any other role whose jurisdiction is a unit subtree) the users
/// whose home unit, or whose department's unit, lies in it — never the admins, who have
/// neither. Jurisdictions that are not a subtree cover no other users.
async fn readable_by(ctx: &AppContext, caller: &Caller) -> AppResult<Condition> {
    let scope = super::tickets::Viewer::of(&ctx.db, caller).await?.scope();
    Ok(match scope {
        Scope::Everything => Condition::all(),
        Scope::UnitPath(path) => {
            let units = repo::grid_units::ids_in_subtree(&path);
            let departments = Query::select()
                .column(department::Column::Id)
                .from(department::Entity)
                .and_where(department::Column::UnitId.in_subquery(units.clone()))
                .to_owned();
            Condition::any()
                .add(user::Column::UnitId.in_subquery(units))
                .add(user::Column::DepartmentId.in_subquery(departments))
        }
        Scope::FiledByOrUnitPath { .. } | Scope::Department(_) | Scope::Nothing => {
            Condition::all().add(user::Column::Id.is_null())
        }
    })
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: UserFilter,
    request: PageRequest,
) -> AppResult<Page<user::Model>> {
    require(caller, Permission::ReadUsers)?;
    let mut select = user::Entity::find().filter(readable_by(ctx, caller).await?);
    if let Some(role) = filter.role {
        select = select.filter(user::Column::Role.eq(role));
    }
    if let Some(unit) = filter.unit {
        select = select.filter(user::Column::UnitId.eq(unit));
    }
    if let Some(department) = filter.department {
        select = select.filter(user::Column::DepartmentId.eq(department));
    }
    if let Some(active) = filter.active {
        select = select.filter(user::Column::Active.eq(active));
    }
    if let Some(username) = filter.username {
        select = select.filter(user::Column::Username.eq(username));
    }
    Ok(page::fetch(&ctx.db, select, user::Column::Id, |m| m.id, request).await?)
}

pub async fn by_username(db: &impl ConnectionTrait, username: &str) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find().filter(user::Column::Username.eq(username)).one(db).await?)
}

fn username(errors: &mut FieldErrors, value: &str) -> String {
    let name = value.trim().to_owned();
    let valid = (3..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if !valid {
        errors.add("username", "must be 3–64 of lower-case letters, digits, '.', '-' or '_'");
    }
    name
}

fn hash(password: &str) -> AppResult<String> {
    password::hash(password).map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

/// Each role lives somewhere specific: that is what later scopes what the user sees.
async fn check_home(
    db: &impl ConnectionTrait,
    role: Role,
    unit_id: Option<Uuid>,
    department_id: Option<Uuid>,
) -> AppResult<()> {
    let allowed_levels: &[UnitLevel] = match role {
        Role::GridWorker => &[UnitLevel::Grid],
        Role::Dispatcher => &[UnitLevel::Township],
        Role::Supervisor => &[UnitLevel::City, UnitLevel::County],
        Role::DepartmentStaff | Role::Admin => &[],
    };
    let role_name = super::role_name(role);
    match (allowed_levels.is_empty(), unit_id) {
        (true, Some(_)) => return Err(AppError::invalid("unit_id", format!("a {role_name} has no home unit"))),
        (false, None) => return Err(AppError::invalid("unit_id", format!("a {role_name} needs a home unit"))),
        (false, Some(unit_id)) => {
            let unit: grid_unit::Model = referenced::<grid_unit::Entity>(db, "unit_id", unit_id, "grid unit").await?;
            if !allowed_levels.contains(&unit.level) {
                let names: Vec<&str> = allowed_levels.iter().map(|l| super::grid_units::level_name(*l)).collect();
                return Err(AppError::invalid(
                    "unit_id",
                    format!("a {role_name}'s home unit must be a {}", names.join(" or ")),
                ));
            }
        }
        (true, None) => {}
    }
    match (role, department_id) {
        (Role::DepartmentStaff, None) => Err(AppError::invalid("department_id", "department staff need a department")),
        (Role::DepartmentStaff, Some(id)) => {
            referenced::<department::Entity>(db, "department_id", id, "department").await.map(|_| ())
        }
        (_, Some(_)) => Err(AppError::invalid("department_id", format!("a {role_name} belongs to no department"))),
        (_, None) => Ok(()),
    }
}
