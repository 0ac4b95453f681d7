//! Reference data: the grid-unit tree, departments, the request taxonomy and routing rules.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
pub enum GridUnits {
    Table,
    Id,
    Code,
    Name,
    Level,
    ParentId,
    /// Materialised ancestry `/<root id>/…/<own id>/`, so a subtree is one prefix match.
    Path,
    Depth,
    Boundary,
    /// Bounding box of `boundary`: an indexed pre-filter before the point-in-polygon test.
    MinLat,
    MaxLat,
    MinLon,
    MaxLon,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Departments {
    Table,
    Id,
    Code,
    Name,
    UnitId,
    Email,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Categories {
    Table,
    Id,
    Code,
    Name,
    DefaultPriority,
    AutoDispatch,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RoutingRules {
    Table,
    Id,
    CategoryId,
    UnitId,
    PrimaryDepartmentId,
    /// `<category id or *>:<unit id>` — one rule per (category, unit), portable even
    /// though `category_id` is nullable (NULLs are never equal in a unique index).
    ScopeKey,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RoutingRuleCoHandlers {
    Table,
    RuleId,
    DepartmentId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GridUnits::Table)
                    .col(pk_uuid(GridUnits::Id))
                    .col(string_len_uniq(GridUnits::Code, 32))
                    .col(string_len(GridUnits::Name, 100))
                    .col(string_len(GridUnits::Level, 16))
                    .col(uuid_null(GridUnits::ParentId))
                    .col(string_len(GridUnits::Path, 400))
                    .col(integer(GridUnits::Depth))
                    .col(json_null(GridUnits::Boundary))
                    .col(double_null(GridUnits::MinLat))
                    .col(double_null(GridUnits::MaxLat))
                    .col(double_null(GridUnits::MinLon))
                    .col(double_null(GridUnits::MaxLon))
                    .col(timestamp_with_time_zone(GridUnits::CreatedAt))
                    .col(timestamp_with_time_zone(GridUnits::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(GridUnits::Table, GridUnits::ParentId)
                            .to(GridUnits::Table, GridUnits::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_grid_units_parent", GridUnits::Table, &[GridUnits::ParentId]).await?;
        index(manager, "idx_grid_units_path", GridUnits::Table, &[GridUnits::Path]).await?;
        index(manager, "idx_grid_units_level", GridUnits::Table, &[GridUnits::Level]).await?;
        index(
            manager,
            "idx_grid_units_bbox",
            GridUnits::Table,
            &[GridUnits::MinLat, GridUnits::MaxLat, GridUnits::MinLon, GridUnits::MaxLon],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Departments::Table)
                    .col(pk_uuid(Departments::Id))
                    .col(string_len_uniq(Departments::Code, 32))
                    .col(string_len(Departments::Name, 100))
                    .col(uuid(Departments::UnitId))
                    .col(string_len(Departments::Email, 254))
                    .col(boolean(Departments::Active))
                    .col(timestamp_with_time_zone(Departments::CreatedAt))
                    .col(timestamp_with_time_zone(Departments::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Departments::Table, Departments::UnitId)
                            .to(GridUnits::Table, GridUnits::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_departments_unit", Departments::Table, &[Departments::UnitId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .col(pk_uuid(Categories::Id))
                    .col(string_len_uniq(Categories::Code, 32))
                    .col(string_len(Categories::Name, 100))
                    .col(string_len(Categories::DefaultPriority, 16))
                    .col(boolean(Categories::AutoDispatch))
                    .col(boolean(Categories::Active))
                    .col(timestamp_with_time_zone(Categories::CreatedAt))
                    .col(timestamp_with_time_zone(Categories::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RoutingRules::Table)
                    .col(pk_uuid(RoutingRules::Id))
                    .col(uuid_null(RoutingRules::CategoryId))
                    .col(uuid(RoutingRules::UnitId))
                    .col(uuid(RoutingRules::PrimaryDepartmentId))
                    .col(string_len_uniq(RoutingRules::ScopeKey, 80))
                    .col(timestamp_with_time_zone(RoutingRules::CreatedAt))
                    .col(timestamp_with_time_zone(RoutingRules::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RoutingRules::Table, RoutingRules::CategoryId)
                            .to(Categories::Table, Categories::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RoutingRules::Table, RoutingRules::UnitId)
                            .to(GridUnits::Table, GridUnits::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RoutingRules::Table, RoutingRules::PrimaryDepartmentId)
                            .to(Departments::Table, Departments::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_routing_rules_unit", RoutingRules::Table, &[RoutingRules::UnitId]).await?;
        index(manager, "idx_routing_rules_primary", RoutingRules::Table, &[RoutingRules::PrimaryDepartmentId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(RoutingRuleCoHandlers::Table)
                    .col(uuid(RoutingRuleCoHandlers::RuleId))
                    .col(uuid(RoutingRuleCoHandlers::DepartmentId))
                    .primary_key(
                        Index::create().col(RoutingRuleCoHandlers::RuleId).col(RoutingRuleCoHandlers::DepartmentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RoutingRuleCoHandlers::Table, RoutingRuleCoHandlers::RuleId)
                            .to(RoutingRules::Table, RoutingRules::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RoutingRuleCoHandlers::Table, RoutingRuleCoHandlers::DepartmentId)
                            .to(Departments::Table, Departments::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_routing_co_handlers_department",
            RoutingRuleCoHandlers::Table,
            &[RoutingRuleCoHandlers::DepartmentId],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RoutingRuleCoHandlers::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RoutingRules::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Categories::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Departments::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(GridUnits::Table).to_owned()).await
    }
}

pub(crate) async fn index<T, C>(manager: &SchemaManager<'_>, name: &str, table: T, cols: &[C]) -> Result<(), DbErr>
where
    T: IntoIden + Clone + 'static,
    C: IntoIden + Clone + 'static,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(col.clone());
    }
    manager.create_index(stmt.to_owned()).await
}
