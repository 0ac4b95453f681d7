//! Escalation rules: on which trigger whom to notify, and whether a supervision order opens.

use super::sla::ClockKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Warning(ClockKind),
    Breach(ClockKind),
    /// Breach + N working days of the resolve clock (the city's 挂牌督办 rung).
    ResolveFollowup,
    ThirdReturn,
    BadRating,
}

impl Trigger {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "resolve_followup" => Some(Self::ResolveFollowup),
            "third_return" => Some(Self::ThirdReturn),
            "bad_rating" => Some(Self::BadRating),
            _ => {
                if let Some(clock) = text.strip_suffix("_warning") {
                    ClockKind::parse(clock).map(Self::Warning)
                } else {
                    text.strip_suffix("_breach").and_then(ClockKind::parse).map(Self::Breach)
                }
            }
        }
    }

    pub fn name(self) -> String {
        match self {
            Self::Warning(clock) => format!("{}_warning", clock.as_str()),
            Self::Breach(clock) => format!("{}_breach", clock.as_str()),
            Self::ResolveFollowup => "resolve_followup".into(),
            Self::ThirdReturn => "third_return".into(),
            Self::BadRating => "bad_rating".into(),
        }
    }

    /// 中文 for mail subjects.
    pub fn label(self) -> String {
        match self {
            Self::Warning(clock) => format!("{}时限预警", clock.label()),
            Self::Breach(clock) => format!("{}超时", clock.label()),
            Self::ResolveFollowup => "办结严重超时（挂牌督办）".into(),
            Self::ThirdReturn => "多次退单待裁定".into(),
            Self::BadRating => "收到差评".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Department,
    DepartmentHead,
    TownshipDispatcher,
    CountySupervisor,
    CitySupervisor,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Self::Department,
        Self::DepartmentHead,
        Self::TownshipDispatcher,
        Self::CountySupervisor,
        Self::CitySupervisor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Department => "department",
            Self::DepartmentHead => "department_head",
            Self::TownshipDispatcher => "township_dispatcher",
            Self::CountySupervisor => "county_supervisor",
            Self::CitySupervisor => "city_supervisor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisionLevel {
    /// 督办
    Supervise,
    /// 挂牌督办
    Listed,
}

impl SupervisionLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Supervise => "supervise",
            Self::Listed => "listed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Supervise, Self::Listed].into_iter().find(|l| l.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Supervise => "督办",
            Self::Listed => "挂牌督办",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub trigger: Trigger,
    pub notify: Vec<Target>,
    pub supervision: Option<SupervisionLevel>,
}

impl Rule {
    pub fn parse(trigger: &str, notify: &[String], supervision: Option<&str>) -> Result<Self, String> {
        let trigger = Trigger::parse(trigger).ok_or_else(|| format!("unknown trigger `{trigger}`"))?;
        let notify = notify
            .iter()
            .map(|t| Target::parse(t).ok_or_else(|| format!("unknown target `{t}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let supervision = supervision
            .map(|s| {
                SupervisionLevel::parse(s).ok_or_else(|| format!("supervision must be supervise or listed, not `{s}`"))
            })
            .transpose()?;
        if notify.is_empty() && supervision.is_none() {
            return Err("a rule must notify someone or open a supervision order".into());
        }
        Ok(Self { trigger, notify, supervision })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_round_trip() {
        for text in [
            "acknowledge_breach",
            "resolve_warning",
            "rectify_breach",
            "resolve_followup",
            "third_return",
            "bad_rating",
        ] {
            assert_eq!(Trigger::parse(text).map(Trigger::name).as_deref(), Some(text));
        }
        assert_eq!(Trigger::parse("lunch_breach"), None);
        assert_eq!(Trigger::parse("resolve"), None);
    }

    #[test]
    fn rules_are_checked() {
        let notify = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Rule::parse("resolve_breach", &notify(&["county_supervisor"]), Some("supervise")).is_ok());
        assert!(Rule::parse("resolve_breach", &notify(&["mayor"]), None).is_err());
        assert!(Rule::parse("resolve_breach", &notify(&[]), None).is_err());
        assert!(Rule::parse("resolve_breach", &notify(&["department"]), Some("urgent")).is_err());
    }
}
