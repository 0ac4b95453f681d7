use entities::grid_unit;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, Query, SelectStatement},
};
use uuid::Uuid;

use crate::domain::geo::Point;

/// Units whose bounding box holds the point, deepest first; the caller runs the exact test.
pub async fn locate_candidates(db: &impl ConnectionTrait, point: Point) -> Result<Vec<grid_unit::Model>, DbErr> {
    grid_unit::Entity::find()
        .filter(grid_unit::Column::MinLat.lte(point.lat))
        .filter(grid_unit::Column::MaxLat.gte(point.lat))
        .filter(grid_unit::Column::MinLon.lte(point.lon))
        .filter(grid_unit::Column::MaxLon.gte(point.lon))
        .order_by_desc(grid_unit::Column::Depth)
        .order_by_asc(grid_unit::Column::Code)
        .all(db)
        .await
}

/// Rewrites the stored ancestry of a moved unit's descendants, in the caller's transaction.
/// Row by row: moves are rare admin edits of a few hundred units at most, and plain updates
/// stay portable across SQLite and PostgreSQL.
pub async fn move_subtree(
    db: &impl ConnectionTrait,
    old_path: &str,
    new_path: &str,
    depth_change: i32,
) -> Result<(), DbErr> {
    let descendants = grid_unit::Entity::find()
        .filter(grid_unit::Column::Path.starts_with(old_path))
        .filter(grid_unit::Column::Path.ne(old_path))
        .all(db)
        .await?;
    for unit in descendants {
        let path = format!("{new_path}{}", &unit.path[old_path.len()..]);
        grid_unit::Entity::update_many()
            .col_expr(grid_unit::Column::Path, Expr::val(path))
            .col_expr(grid_unit::Column::Depth, Expr::val(unit.depth + depth_change))
            .filter(grid_unit::Column::Id.eq(unit.id))
            .exec(db)
            .await?;
    }
    Ok(())
}

pub async fn has_children(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    Ok(grid_unit::Entity::find().filter(grid_unit::Column::ParentId.eq(id)).one(db).await?.is_some())
}

/// The ids of every unit in the subtree whose stored path starts with `path`, as a subquery
/// for rows that hang off units (users, departments).
pub fn ids_in_subtree(path: &str) -> SelectStatement {
    Query::select()
        .column(grid_unit::Column::Id)
        .from(grid_unit::Entity)
        .and_where(grid_unit::Column::Path.starts_with(path))
        .to_owned()
}

/// The ids on a unit's stored path, root first.
pub fn ancestry(path: &str) -> Vec<Uuid> {
    path.split('/').filter_map(|s| Uuid::parse_str(s).ok()).collect()
}

/// After a subtree moved: every ticket filed in it gets the township and county it now lies
/// in, so reports by township/county and the supervisors of the overdue list agree with
/// visibility (which follows the path). One UPDATE per distinct (township, county) pair.
pub async fn refresh_ticket_ancestors(db: &impl ConnectionTrait, subtree_path: &str) -> Result<u64, DbErr> {
    use std::collections::{BTreeSet, HashMap};

    use entities::{UnitLevel, ticket};

    let units = grid_unit::Entity::find().filter(grid_unit::Column::Path.starts_with(subtree_path)).all(db).await?;
    let ancestors: BTreeSet<Uuid> = units.iter().flat_map(|u| ancestry(&u.path)).collect();
    let levels: HashMap<Uuid, UnitLevel> = grid_unit::Entity::find()
        .filter(grid_unit::Column::Id.is_in(ancestors))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.level))
        .collect();
    let at = |path: &str, level: UnitLevel| ancestry(path).into_iter().find(|id| levels.get(id) == Some(&level));
    let mut groups: HashMap<(Option<Uuid>, Option<Uuid>), Vec<Uuid>> = HashMap::new();
    for unit in &units {
        let key = (at(&unit.path, UnitLevel::Township), at(&unit.path, UnitLevel::County));
        groups.entry(key).or_default().push(unit.id);
    }
    let mut changed = 0;
    for ((township, county), unit_ids) in groups {
        changed += ticket::Entity::update_many()
            .col_expr(ticket::Column::TownshipId, Expr::val(township))
            .col_expr(ticket::Column::CountyId, Expr::val(county))
            .filter(ticket::Column::UnitId.is_in(unit_ids))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(changed)
}
