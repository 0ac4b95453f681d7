//! A few dozen demo tickets in every state, played through the real use cases on a clock that
//! starts three weeks ago, so timelines look like a city's. Idempotent: each ticket is filed
//! with a fixed `Idempotency-Key`, and a replayed one is left as it is.

use chrono::Duration;
use entities::user;
use uuid::Uuid;

use crate::{
    clock::{Clock, ManualClock},
    context::AppContext,
    domain::access::Caller,
    error::{AppError, AppResult},
    service::{
        auth::caller_of,
        categories, departments,
        dispatches::{self, ProgressRequest, ResolveRequest, ReturnRequest},
        tickets::{self, DispatchRequest, Location, NewTicket, RatingRequest, ReasonRequest, Resident, WhistleRequest},
        users,
    },
};

/// Where each demo ticket ends up.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Filed,
    Dispatched,
    InProgress,
    Resolved,
    Closed(u8),
    /// 差评, rectified, then rated again.
    Rectified,
    Cancelled,
    /// Returned three times: waiting for supervisor arbitration.
    Arbitration,
    /// Summoned two more departments (吹哨), work under way.
    Whistled,
}

/// (category, title, description, filed by the dispatcher from the hotline).
const REQUESTS: &[(&str, &str, &str, bool)] = &[
    ("environment", "小区门口垃圾清运不及时", "和平街北口垃圾桶满溢三天，气味很大。", false),
    ("environment", "人行道共享单车乱停放", "建设路人行道被单车占满，老人通行困难。", true),
    ("utilities", "单元楼停水", "5号楼自昨晚起停水，未见通知。", true),
    ("utilities", "路灯不亮", "和平街东段三盏路灯夜间不亮。", false),
    ("property", "电梯经常故障", "7号楼电梯一周内停运两次，物业未及时维修。", false),
    ("property", "物业费收支不公开", "居民要求公开上年度物业费收支明细。", true),
    ("dispute", "邻里噪音纠纷", "楼上住户夜间装修噪音扰民，协商未果。", false),
    ("dispute", "停车位占用纠纷", "私家车位长期被他人占用。", true),
    ("elderly_care", "独居老人需要助餐服务", "82岁独居老人行动不便，希望安排社区助餐。", false),
    ("elderly_care", "申请居家养老上门服务", "失能老人家属咨询上门护理服务。", true),
    ("safety_hazard", "楼道电动车充电", "楼道内私拉电线为电动车充电，存在火灾隐患。", false),
    ("safety_hazard", "广告牌松动", "临街商铺广告牌松动，大风天有坠落风险。", false),
    ("public_security", "夜间有人撬车门", "小区停车场近期多次发生车辆被撬。", true),
    ("employment", "失业人员求职登记", "居民咨询失业登记和技能培训报名。", true),
    ("childcare", "咨询普惠托育名额", "双职工家庭咨询社区托育点入托。", false),
    ("health", "家庭医生签约咨询", "慢病老人希望签约家庭医生。", true),
    ("other", "建议增设休闲座椅", "社区广场缺少座椅，居民建议增设。", false),
    ("disability", "残疾人无障碍通道损坏", "单元门口坡道破损，轮椅无法通行。", false),
];

const FATES: &[Fate] = &[
    Fate::Closed(5),
    Fate::Closed(4),
    Fate::InProgress,
    Fate::Resolved,
    Fate::Dispatched,
    Fate::Filed,
    Fate::Closed(3),
    Fate::Rectified,
    Fate::InProgress,
    Fate::Cancelled,
    Fate::Whistled,
    Fate::Resolved,
    Fate::Closed(5),
    Fate::Arbitration,
    Fate::Dispatched,
    Fate::Filed,
    Fate::Closed(4),
    Fate::InProgress,
];

/// The grids of 新建路街道, with a point inside each.
const GRIDS: &[(&str, f64, f64)] = &[
    ("140902001001-G01", 38.410, 112.705),
    ("140902001001-G02", 38.420, 112.718),
    ("140902001002-G01", 38.405, 112.740),
    ("140902001002-G02", 38.425, 112.735),
];

/// Plays the demo tickets; returns how many were created and how many were there already.
pub async fn seed(ctx: &AppContext) -> AppResult<(usize, usize)> {
    let clock = ManualClock::starting_at(ctx.clock.now() - Duration::days(21));
    let played = ctx.with_clock(clock.clone());
    let grid_worker = demo_user(ctx, "demo-grid").await?;
    let dispatcher = demo_user(ctx, "demo-dispatcher").await?;
    let clerk = demo_user(ctx, "demo-dept").await?;
    let cgj = department(ctx, "XF-CGJ").await?;

    let (mut created, mut existing) = (0, 0);
    let start = clock.now();
    for round in 0..2 {
        for (i, &(category_code, title, description, by_phone)) in REQUESTS.iter().enumerate() {
            let n = round * REQUESTS.len() + i;
            clock.set(start + Duration::hours(10 * n as i64));
            // The grid worker walks grid 1; the hotline reaches the dispatcher from anywhere in the street.
            let (grid, lat, lon) = if by_phone { GRIDS[1 + n % (GRIDS.len() - 1)] } else { GRIDS[0] };
            let filer = if by_phone { &dispatcher } else { &grid_worker };
            let category = categories::by_code(&ctx.db, category_code)
                .await?
                .ok_or_else(|| AppError::Internal(format!("demo category {category_code} missing")))?;
            let input = NewTicket {
                category_id: category.id,
                priority: None,
                title: title.into(),
                description: description.into(),
                location: Some(Location { lat, lon }),
                grid_unit_id: None,
                address: Some(format!("忻府区新建路街道 {grid} 网格")),
                resident: Some(Resident {
                    name: Some(RESIDENT_NAMES[n % RESIDENT_NAMES.len()].into()),
                    phone: Some(format!("139{:08}", 3_504_100 + n)),
                }),
                channel: Some(if by_phone {
                    crate::domain::ticket::Channel::Hotline
                } else {
                    crate::domain::ticket::Channel::GridApp
                }),
                attachments: vec![],
            };
            let filed = tickets::file(&played, filer, input, Some(format!("demo-ticket-{n:03}"))).await?;
            if filed.replayed {
                existing += 1;
                continue;
            }
            created += 1;
            play(
                &played,
                &clock,
                filed.view.ticket.id,
                FATES[n % FATES.len()],
                &Actors { grid_worker: &grid_worker, filer, dispatcher: &dispatcher, clerk: &clerk, cgj },
            )
            .await?;
        }
    }
    let supervisor = demo_user(ctx, "demo-supervisor").await?;
    let (more, there) =
        super::demo_governance::seed(&played, &clock, ctx.clock.now(), &grid_worker, &dispatcher, &supervisor).await?;
    queue_mail_now(ctx).await?;
    Ok((created + more, existing + there))
}

/// The played history wrote its mails weeks in the past, but they reach the outbox only now:
/// their retry window (`smtp.retention`) starts now, so a mail server started after the demo
/// still receives them instead of finding them dead.
async fn queue_mail_now(ctx: &AppContext) -> AppResult<()> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let now = ctx.clock.now();
    entities::notification::Entity::update_many()
        .col_expr(entities::notification::Column::QueuedAt, Expr::value(Some(now)))
        .col_expr(entities::notification::Column::NextAttemptAt, Expr::value(now))
        .filter(entities::notification::Column::Status.eq(entities::enums::MailStatus::Pending))
        .filter(entities::notification::Column::QueuedAt.is_null())
        .exec(&ctx.db)
        .await?;
    Ok(())
}

const RESIDENT_NAMES: &[&str] =
    &["王秀英", "李建国", "张桂兰", "刘志强", "陈美华", "杨德明", "赵淑珍", "欧阳明", "周海燕"];

struct Actors<'a> {
    grid_worker: &'a Caller,
    filer: &'a Caller,
    dispatcher: &'a Caller,
    clerk: &'a Caller,
    cgj: Uuid,
}

/// Plays a ticket forward to its fate; every step an hour or a few later than the last.
async fn play(ctx: &AppContext, clock: &ManualClock, ticket_id: Uuid, fate: Fate, who: &Actors<'_>) -> AppResult<()> {
    let later = |hours: i64| clock.advance(Duration::hours(hours));
    let filed = tickets::get(ctx, who.dispatcher, ticket_id).await?;
    if matches!(fate, Fate::Filed) {
        return Ok(());
    }
    // Tickets that did not auto-dispatch go to 城市管理局, so demo-dept can work them.
    if filed.ticket.status == "filed" {
        later(1);
        let to_cgj = DispatchRequest { primary_department_id: Some(who.cgj), co_handler_department_ids: vec![] };
        tickets::dispatch(ctx, who.dispatcher, ticket_id, None, to_cgj).await?;
    }
    let primary = |view: &tickets::TicketView| view.dispatches.iter().rev().find(|d| d.role == "primary").map(|d| d.id);
    let current = tickets::get(ctx, who.dispatcher, ticket_id).await?;
    let Some(mut dispatch_id) = primary(&current) else {
        return Ok(());
    };
    let handled_by_clerk = current.dispatches.iter().any(|d| d.id == dispatch_id && d.department_id == who.cgj);
    if matches!(fate, Fate::Dispatched) || !handled_by_clerk {
        return Ok(());
    }
    if let Fate::Cancelled = fate {
        later(2);
        let reason = ReasonRequest { reason: "与已有工单重复，合并办理".into() };
        tickets::cancel(ctx, who.dispatcher, ticket_id, None, reason).await?;
        return Ok(());
    }
    if let Fate::Arbitration = fate {
        for round in 1..=3 {
            later(2);
            let reason = ReturnRequest { reason: format!("第{round}次退单：该事项不属于城管职责") };
            dispatches::return_dispatch(ctx, who.clerk, dispatch_id, reason).await?;
            if round < 3 {
                later(1);
                let again = DispatchRequest { primary_department_id: Some(who.cgj), co_handler_department_ids: vec![] };
                let view = tickets::dispatch(ctx, who.dispatcher, ticket_id, None, again).await?;
                dispatch_id = primary(&view).unwrap_or(dispatch_id);
            }
        }
        return Ok(());
    }
    later(1);
    dispatches::acknowledge(ctx, who.clerk, dispatch_id).await?;
    if let Fate::Whistled = fate {
        later(1);
        let summoned = vec![department(ctx, "XF-ZJJ").await?, department(ctx, "XF-YJJ").await?];
        let whistle = WhistleRequest {
            department_ids: summoned, reason: "涉及房屋安全和消防，吹哨联合处置".into()
        };
        tickets::whistle(ctx, who.dispatcher, ticket_id, None, whistle).await?;
    }
    later(3);
    let note =
        ProgressRequest { note: "已电话联系居民，约定上门时间".into(), contacted_resident: Some(true) };
    dispatches::progress(ctx, who.clerk, dispatch_id, note).await?;
    if matches!(fate, Fate::InProgress | Fate::Whistled) {
        return Ok(());
    }
    later(20);
    dispatches::resolve(
        ctx,
        who.clerk,
        dispatch_id,
        ResolveRequest { reply: "已现场处理完毕，并向居民反馈。".into(), attachments: vec![] },
    )
    .await?;
    let rater = if who.filer.role == entities::Role::GridWorker { who.grid_worker } else { who.dispatcher };
    match fate {
        Fate::Closed(score) => {
            later(5);
            tickets::rate(
                ctx,
                rater,
                ticket_id,
                None,
                RatingRequest { score: score.into(), comment: Some("处理及时".into()) },
            )
            .await?;
        }
        Fate::Rectified => {
            later(5);
            tickets::rate(
                ctx,
                rater,
                ticket_id,
                None,
                RatingRequest { score: 2, comment: Some("问题没有彻底解决".into()) },
            )
            .await?;
            later(24);
            dispatches::resolve(
                ctx,
                who.clerk,
                dispatch_id,
                ResolveRequest { reply: "已整改到位，加装防护设施。".into(), attachments: vec![] },
            )
            .await?;
            later(5);
            tickets::rate(ctx, rater, ticket_id, None, RatingRequest { score: 4, comment: Some("整改后满意".into()) })
                .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn demo_user(ctx: &AppContext, username: &str) -> AppResult<Caller> {
    let user: user::Model = users::by_username(&ctx.db, username)
        .await?
        .ok_or_else(|| AppError::Internal(format!("demo user {username} missing")))?;
    Ok(caller_of(&user))
}

async fn department(ctx: &AppContext, code: &str) -> AppResult<Uuid> {
    departments::by_code(&ctx.db, code)
        .await?
        .map(|d| d.id)
        .ok_or_else(|| AppError::Internal(format!("demo department {code} missing")))
}
