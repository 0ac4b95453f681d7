//! Keyset pagination over UUID v7 ids: stable under inserts, no OFFSET scans.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use uuid::Uuid;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u64,
    /// Items strictly after this id in the listing's order.
    pub after: Option<Uuid>,
}

/// UUID v7 ids sort by creation time, so id order is creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

pub async fn fetch<E, C>(
    db: &C,
    select: Select<E>,
    id_column: E::Column,
    id_of: fn(&E::Model) -> Uuid,
    request: PageRequest,
) -> Result<Page<E::Model>, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    fetch_ordered(db, select, id_column, id_of, request, Order::OldestFirst).await
}

pub async fn fetch_ordered<E, C>(
    db: &C,
    select: Select<E>,
    id_column: E::Column,
    id_of: fn(&E::Model) -> Uuid,
    request: PageRequest,
    order: Order,
) -> Result<Page<E::Model>, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut select = select;
    if let Some(after) = request.after {
        select = match order {
            Order::OldestFirst => select.filter(id_column.gt(after)),
            Order::NewestFirst => select.filter(id_column.lt(after)),
        };
    }
    select = match order {
        Order::OldestFirst => select.order_by_asc(id_column),
        Order::NewestFirst => select.order_by_desc(id_column),
    };
    let mut items = select.limit(request.limit + 1).all(db).await?;
    let next_cursor = if items.len() as u64 > request.limit {
        items.truncate(request.limit as usize);
        items.last().map(|m| id_of(m).to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}
