use entities::{routing_rule, routing_rule_co_handler};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

/// Rules that could apply to a ticket of `category` in a unit with these ancestors
/// (its own id included). Precedence is decided by the caller.
pub async fn candidates(
    db: &impl ConnectionTrait,
    category: Uuid,
    unit_ancestry: &[Uuid],
) -> Result<Vec<routing_rule::Model>, DbErr> {
    routing_rule::Entity::find()
        .filter(routing_rule::Column::UnitId.is_in(unit_ancestry.iter().copied()))
        .filter(
            Condition::any()
                .add(routing_rule::Column::CategoryId.eq(category))
                .add(routing_rule::Column::CategoryId.is_null()),
        )
        .order_by_asc(routing_rule::Column::Id)
        .all(db)
        .await
}

pub async fn co_handlers(
    db: &impl ConnectionTrait,
    rule_ids: &[Uuid],
) -> Result<Vec<routing_rule_co_handler::Model>, DbErr> {
    routing_rule_co_handler::Entity::find()
        .filter(routing_rule_co_handler::Column::RuleId.is_in(rule_ids.iter().copied()))
        .order_by_asc(routing_rule_co_handler::Column::DepartmentId)
        .all(db)
        .await
}

pub async fn replace_co_handlers(db: &impl ConnectionTrait, rule_id: Uuid, departments: &[Uuid]) -> Result<(), DbErr> {
    routing_rule_co_handler::Entity::delete_many()
        .filter(routing_rule_co_handler::Column::RuleId.eq(rule_id))
        .exec(db)
        .await?;
    let rows = departments.iter().map(|&department_id| routing_rule_co_handler::ActiveModel {
        rule_id: Set(rule_id),
        department_id: Set(department_id),
    });
    if !departments.is_empty() {
        routing_rule_co_handler::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}
