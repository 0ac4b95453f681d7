//! The demo data set: 忻州市 with its fourteen county-level units, a few streets, communities
//! and grids with boundaries, departments, the request taxonomy, routing rules and one user per
//! role. Idempotent: rows are matched by code or user name and only missing ones are created.

use entities::{Priority, Role, UnitLevel};
use serde_json::json;
use uuid::Uuid;

use crate::{
    context::AppContext,
    domain::access::Caller,
    error::{AppError, AppResult},
    service::{categories, departments, devices, grid_units, routing, users},
};

/// (code, name, level, parent code, bounding box as [min_lon, min_lat, max_lon, max_lat]).
type UnitRow = (&'static str, &'static str, UnitLevel, Option<&'static str>, Option<[f64; 4]>);

const UNITS: &[UnitRow] = &[
    ("140900", "忻州市", UnitLevel::City, None, Some([111.0, 38.1, 114.0, 39.7])),
    ("140902", "忻府区", UnitLevel::County, Some("140900"), Some([112.30, 38.20, 113.00, 38.70])),
    ("140921", "定襄县", UnitLevel::County, Some("140900"), None),
    ("140922", "五台县", UnitLevel::County, Some("140900"), None),
    ("140923", "代县", UnitLevel::County, Some("140900"), None),
    ("140924", "繁峙县", UnitLevel::County, Some("140900"), None),
    ("140925", "宁武县", UnitLevel::County, Some("140900"), None),
    ("140926", "静乐县", UnitLevel::County, Some("140900"), None),
    ("140927", "神池县", UnitLevel::County, Some("140900"), None),
    ("140928", "五寨县", UnitLevel::County, Some("140900"), None),
    ("140929", "岢岚县", UnitLevel::County, Some("140900"), None),
    ("140930", "河曲县", UnitLevel::County, Some("140900"), None),
    ("140931", "保德县", UnitLevel::County, Some("140900"), None),
    ("140932", "偏关县", UnitLevel::County, Some("140900"), None),
    ("140981", "原平市", UnitLevel::County, Some("140900"), Some([112.40, 38.70, 113.10, 39.10])),
    ("140902001000", "新建路街道", UnitLevel::Township, Some("140902"), Some([112.700, 38.400, 112.750, 38.430])),
    ("140902002000", "长征街街道", UnitLevel::Township, Some("140902"), Some([112.750, 38.400, 112.800, 38.430])),
    ("140902003000", "秀容街道", UnitLevel::Township, Some("140902"), None),
    ("140981001000", "北城街道", UnitLevel::Township, Some("140981"), Some([112.700, 38.720, 112.720, 38.740])),
    ("140902001001", "和平社区", UnitLevel::Community, Some("140902001000"), Some([112.700, 38.400, 112.725, 38.430])),
    ("140902001002", "建设社区", UnitLevel::Community, Some("140902001000"), Some([112.725, 38.400, 112.750, 38.430])),
    ("140902002001", "长征社区", UnitLevel::Community, Some("140902002000"), Some([112.750, 38.400, 112.800, 38.430])),
    ("140981001001", "北关社区", UnitLevel::Community, Some("140981001000"), Some([112.700, 38.720, 112.720, 38.740])),
    (
        "140902001001-G01",
        "和平社区第一网格",
        UnitLevel::Grid,
        Some("140902001001"),
        Some([112.700, 38.400, 112.7125, 38.430]),
    ),
    (
        "140902001001-G02",
        "和平社区第二网格",
        UnitLevel::Grid,
        Some("140902001001"),
        Some([112.7125, 38.400, 112.725, 38.430]),
    ),
    (
        "140902001002-G01",
        "建设社区第一网格",
        UnitLevel::Grid,
        Some("140902001002"),
        Some([112.725, 38.400, 112.750, 38.415]),
    ),
    (
        "140902001002-G02",
        "建设社区第二网格",
        UnitLevel::Grid,
        Some("140902001002"),
        Some([112.725, 38.415, 112.750, 38.430]),
    ),
    (
        "140902002001-G01",
        "长征社区第一网格",
        UnitLevel::Grid,
        Some("140902002001"),
        Some([112.750, 38.400, 112.800, 38.430]),
    ),
    (
        "140981001001-G01",
        "北关社区第一网格",
        UnitLevel::Grid,
        Some("140981001001"),
        Some([112.700, 38.720, 112.720, 38.740]),
    ),
];

/// (code, name, unit code, e-mail).
const DEPARTMENTS: &[(&str, &str, &str, &str)] = &[
    ("XF-MZJ", "忻府区民政局", "140902", "mzj.xinfu@gridwhistle.example"),
    ("XF-WJJ", "忻府区卫生健康局", "140902", "wjj.xinfu@gridwhistle.example"),
    ("XF-RSJ", "忻府区人力资源和社会保障局", "140902", "rsj.xinfu@gridwhistle.example"),
    ("XF-GAJ", "忻州市公安局忻府分局", "140902", "gaj.xinfu@gridwhistle.example"),
    ("XF-SFJ", "忻府区司法局", "140902", "sfj.xinfu@gridwhistle.example"),
    ("XF-YJJ", "忻府区应急管理局", "140902", "yjj.xinfu@gridwhistle.example"),
    ("XF-ZJJ", "忻府区住房和城乡建设局", "140902", "zjj.xinfu@gridwhistle.example"),
    ("XF-CGJ", "忻府区城市管理局", "140902", "cgj.xinfu@gridwhistle.example"),
    ("XF-JYJ", "忻府区教育局", "140902", "jyj.xinfu@gridwhistle.example"),
    ("XJL-ZZZX", "新建路街道综治中心", "140902001000", "zzzx.xinjianlu@gridwhistle.example"),
    ("YP-CGJ", "原平市城市管理局", "140981", "cgj.yuanping@gridwhistle.example"),
];

/// (code, name, default priority, auto-dispatch).
const CATEGORIES: &[(&str, &str, Priority, bool)] = &[
    ("elderly_care", "养老", Priority::Normal, false),
    ("childcare", "托育", Priority::Normal, false),
    ("disability", "助残", Priority::Normal, false),
    ("health", "医疗卫生", Priority::Normal, false),
    ("employment", "就业", Priority::Normal, false),
    ("public_security", "治安", Priority::Urgent, true),
    ("dispute", "矛盾纠纷", Priority::Normal, false),
    ("safety_hazard", "安全隐患", Priority::Urgent, true),
    ("property", "物业", Priority::Normal, false),
    ("environment", "市容环境", Priority::Normal, true),
    ("utilities", "供水供电供气供热", Priority::Urgent, true),
    ("social_assistance", "社会救助", Priority::Normal, false),
    ("education", "教育", Priority::Normal, false),
    ("traffic", "交通出行", Priority::Normal, false),
    ("other", "其他", Priority::Normal, false),
];

/// (category code, unit code, primary department code, co-handler codes).
const RULES: &[(&str, &str, &str, &[&str])] = &[
    ("elderly_care", "140902", "XF-MZJ", &["XF-WJJ"]),
    ("childcare", "140902", "XF-WJJ", &["XF-JYJ"]),
    ("disability", "140902", "XF-MZJ", &[]),
    ("health", "140902", "XF-WJJ", &[]),
    ("employment", "140902", "XF-RSJ", &[]),
    ("public_security", "140902", "XF-GAJ", &[]),
    ("dispute", "140902", "XF-SFJ", &[]),
    // A street's own mediation centre takes its disputes first (最具体的规则优先).
    ("dispute", "140902001000", "XJL-ZZZX", &["XF-SFJ"]),
    ("safety_hazard", "140902", "XF-YJJ", &["XF-ZJJ"]),
    ("property", "140902", "XF-ZJJ", &[]),
    ("environment", "140902", "XF-CGJ", &[]),
    ("environment", "140981", "YP-CGJ", &[]),
    ("utilities", "140902", "XF-CGJ", &["XF-ZJJ"]),
    ("social_assistance", "140902", "XF-MZJ", &[]),
    ("education", "140902", "XF-JYJ", &[]),
];

/// Community sensors: (device id, name, grid code, [lat, lon], category code, kinds, heartbeat timeout).
type DeviceRow =
    (&'static str, &'static str, &'static str, [f64; 2], &'static str, &'static [&'static str], Option<&'static str>);

const DEVICES: &[DeviceRow] = &[
    ("SMOKE-001", "和平街12号3号楼烟感", "140902001001-G01", [38.41, 112.705], "safety_hazard", &["smoke"], None),
    (
        "MANHOLE-001",
        "建设路口井盖倾斜传感器",
        "140902001002-G01",
        [38.405, 112.73],
        "environment",
        &["manhole_tilt"],
        None,
    ),
    (
        "WATER-001",
        "长征街下穿通道积水监测",
        "140902002001-G01",
        [38.42, 112.77],
        "safety_hazard",
        &["water_level"],
        Some("1h"),
    ),
    ("ELEVATOR-001", "和平社区8号楼电梯告警", "140902001001-G02", [38.415, 112.72], "property", &["elevator"], None),
];

/// (user name, display name, role, unit code, department code).
type UserRow = (&'static str, &'static str, Role, Option<&'static str>, Option<&'static str>);

pub const USERS: &[UserRow] = &[
    ("demo-grid", "网格员 李娜", Role::GridWorker, Some("140902001001-G01"), None),
    ("demo-dispatcher", "新建路街道 调度员 王强", Role::Dispatcher, Some("140902001000"), None),
    ("demo-dept", "城市管理局 办事员 赵敏", Role::DepartmentStaff, None, Some("XF-CGJ")),
    ("demo-supervisor", "忻州市 督办员 陈刚", Role::Supervisor, Some("140900"), None),
    ("demo-admin", "系统管理员", Role::Admin, None, None),
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub created: usize,
    pub existing: usize,
}

/// The seed acts as the system itself, not as any user.
fn system() -> Caller {
    Caller {
        user_id: Uuid::nil(),
        username: "system".into(),
        role: Role::Admin,
        unit_id: None,
        department_id: None,
        home_path: None,
        ip: None,
    }
}

/// The whole demo set: reference data, users and a few dozen tickets in every state.
pub async fn seed(ctx: &AppContext) -> AppResult<SeedReport> {
    let mut report = seed_reference(ctx).await?;
    let (created, existing) = super::demo_tickets::seed(ctx).await?;
    report.created += created;
    report.existing += existing;
    Ok(report)
}

/// Reference data and the demo users, without tickets (the tests' starting point).
pub async fn seed_reference(ctx: &AppContext) -> AppResult<SeedReport> {
    let caller = system();
    let mut report = SeedReport::default();
    let db = &ctx.db;

    for &(code, name, level, parent, bbox) in UNITS {
        if grid_units::by_code(db, code).await?.is_some() {
            report.existing += 1;
            continue;
        }
        let parent_id = match parent {
            Some(parent_code) => Some(unit_id(ctx, parent_code).await?),
            None => None,
        };
        let boundary = bbox
            .map(|[w, s, e, n]| json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}));
        let input = grid_units::NewGridUnit { code: code.into(), name: name.into(), level, parent_id, boundary };
        grid_units::create(ctx, &caller, input).await?;
        report.created += 1;
    }

    for &(code, name, unit_code, email) in DEPARTMENTS {
        if departments::by_code(db, code).await?.is_some() {
            report.existing += 1;
            continue;
        }
        let input = departments::NewDepartment {
            code: code.into(),
            name: name.into(),
            unit_id: unit_id(ctx, unit_code).await?,
            email: email.into(),
            head_email: Some(format!("head.{email}")),
            active: true,
        };
        departments::create(ctx, &caller, input).await?;
        report.created += 1;
    }

    for &(code, name, default_priority, auto_dispatch) in CATEGORIES {
        if categories::by_code(db, code).await?.is_some() {
            report.existing += 1;
            continue;
        }
        let input = categories::NewCategory {
            code: code.into(),
            name: name.into(),
            default_priority,
            auto_dispatch,
            active: true,
            resolve_requires_photo: false,
        };
        categories::create(ctx, &caller, input).await?;
        report.created += 1;
    }

    for &(category_code, unit_code, primary, co_handlers) in RULES {
        let mut co_handler_department_ids = Vec::new();
        for code in co_handlers {
            co_handler_department_ids.push(department_id(ctx, code).await?);
        }
        let input = routing::NewRoutingRule {
            category_id: Some(category_id(ctx, category_code).await?),
            unit_id: unit_id(ctx, unit_code).await?,
            primary_department_id: department_id(ctx, primary).await?,
            co_handler_department_ids,
        };
        count(routing::create(ctx, &caller, input).await, &mut report)?;
    }

    for &(username, display_name, role, unit_code, department_code) in USERS {
        let unit_id = match unit_code {
            Some(code) => Some(unit_id(ctx, code).await?),
            None => None,
        };
        let department_id = match department_code {
            Some(code) => Some(department_id(ctx, code).await?),
            None => None,
        };
        let input = users::NewUser {
            username: username.into(),
            display_name: display_name.into(),
            role,
            unit_id,
            department_id,
            password: ctx.settings.demo.password.clone(),
            email: Some(format!("{username}@gridwhistle.example")),
            active: true,
        };
        count(users::create_demo_account(ctx, &caller, input).await, &mut report)?;
    }

    for &(device_id, name, unit_code, [lat, lon], category_code, kinds, heartbeat) in DEVICES {
        if devices::by_device_id(db, device_id).await?.is_some() {
            report.existing += 1;
            continue;
        }
        let input = devices::NewDevice {
            device_id: device_id.into(),
            name: name.into(),
            unit_id: unit_id(ctx, unit_code).await?,
            location: Some(devices::DeviceLocation { lat, lon }),
            category_id: category_id(ctx, category_code).await?,
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            heartbeat_timeout: heartbeat.map(str::to_owned),
        };
        count(devices::create(ctx, &caller, input).await, &mut report)?;
    }
    Ok(report)
}

/// Whether the database holds no users at all: `serve --demo` seeds only then.
pub async fn database_is_empty(ctx: &AppContext) -> AppResult<bool> {
    use sea_orm::{EntityTrait, PaginatorTrait};
    Ok(entities::user::Entity::find().count(&ctx.db).await? == 0)
}

fn count<T>(outcome: AppResult<T>, report: &mut SeedReport) -> AppResult<()> {
    match outcome {
        Ok(_) => report.created += 1,
        Err(AppError::Conflict(_)) => report.existing += 1,
        Err(other) => return Err(other),
    }
    Ok(())
}

async fn unit_id(ctx: &AppContext, code: &str) -> AppResult<Uuid> {
    grid_units::by_code(&ctx.db, code)
        .await?
        .map(|u| u.id)
        .ok_or_else(|| AppError::Internal(format!("demo data names unknown unit {code}")))
}

async fn department_id(ctx: &AppContext, code: &str) -> AppResult<Uuid> {
    departments::by_code(&ctx.db, code)
        .await?
        .map(|d| d.id)
        .ok_or_else(|| AppError::Internal(format!("demo data names unknown department {code}")))
}

async fn category_id(ctx: &AppContext, code: &str) -> AppResult<Uuid> {
    categories::by_code(&ctx.db, code)
        .await?
        .map(|c| c.id)
        .ok_or_else(|| AppError::Internal(format!("demo data names unknown category {code}")))
}
