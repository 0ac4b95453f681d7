use entities::grid_unit;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, sea_query::Expr};
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
pub async fn move_subtree(
    db: &impl ConnectionTrait,
    old_path: &str,
    new_path: &str,
    depth_change: i32,
) -> Result<(), DbErr> {
    // Paths are ASCII (UUIDs and slashes), so character and byte offsets agree.
    let keep_from = old_path.len() as i32 + 1;
    grid_unit::Entity::update_many()
        .col_expr(
            grid_unit::Column::Path,
            Expr::cust_with_values(
                "? || SUBSTR(path, ?)",
                [sea_orm::Value::from(new_path.to_owned()), keep_from.into()],
            ),
        )
        .col_expr(
            grid_unit::Column::Depth,
            Expr::col(grid_unit::Column::Depth).add(depth_change),
        )
        .filter(grid_unit::Column::Path.starts_with(old_path))
        .filter(grid_unit::Column::Path.ne(old_path))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn has_children(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    Ok(grid_unit::Entity::find()
        .filter(grid_unit::Column::ParentId.eq(id))
        .one(db)
        .await?
        .is_some())
}

/// The ids on a unit's stored path, root first.
pub fn ancestry(path: &str) -> Vec<Uuid> {
    path.split('/').filter_map(|s| Uuid::parse_str(s).ok()).collect()
}
