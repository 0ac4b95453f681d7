//! Who may do what: the one table of role permissions and the one definition of which tickets
//! a caller's jurisdiction covers. Services ask it; handlers never check roles themselves.

use entities::Role;
use uuid::Uuid;

/// The authenticated user a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Uuid,
    pub username: String,
    pub role: Role,
    pub unit_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    /// The materialised path of the home unit (`unit_id`), read with the token so that
    /// jurisdiction needs no second look-up. `None` when unknown: it is then looked up.
    pub home_path: Option<String>,
    /// The client address of the request, for the audit log.
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Grid units, departments, categories: everyone filing or handling tickets needs them.
    ReadReferenceData,
    ManageReferenceData,
    /// Routing rules and routing previews: the people who route or supervise routing.
    ReadRouting,
    ReadUsers,
    ManageUsers,
    ReadTickets,
    /// 接诉: grid workers from the street, dispatchers from the hotline or the window.
    FileTicket,
    /// The township hub: dispatch, 吹哨, refuse a return, cancel.
    DispatchTicket,
    /// A department's handler: report in, return, progress, resolve.
    HandleDispatch,
    /// 好差评 on the resident's behalf.
    RateTicket,
    /// 督办: issue supervision orders.
    Supervise,
    /// The outbox and the escalation rules.
    Operate,
    /// The audit log (supervisors: their subtree's records).
    ReadAudit,
    /// Blank a resident's personal data on request.
    ErasePersonalData,
    /// SLA reports (within the caller's jurisdiction).
    ReadReports,
    /// Upload a photo or document to attach: grid workers and dispatchers at filing,
    /// department staff as evidence of their work.
    UploadFile,
}

pub fn role_may(role: Role, permission: Permission) -> bool {
    use Permission::*;
    use Role::*;
    match permission {
        ReadReferenceData => true,
        ReadRouting => matches!(role, Admin | Supervisor | Dispatcher),
        ReadUsers => matches!(role, Admin | Supervisor),
        ManageReferenceData | ManageUsers => role == Admin,
        ReadTickets => true,
        FileTicket | RateTicket => matches!(role, GridWorker | Dispatcher),
        DispatchTicket => role == Dispatcher,
        HandleDispatch => role == DepartmentStaff,
        Supervise => role == Supervisor,
        Operate | ErasePersonalData => role == Admin,
        ReadAudit => matches!(role, Admin | Supervisor),
        ReadReports => matches!(role, Admin | Supervisor | Dispatcher),
        UploadFile => matches!(role, GridWorker | Dispatcher | DepartmentStaff),
    }
}

/// Which tickets a caller's jurisdiction covers. Subtrees are given by the home unit's id;
/// the query layer turns them into a path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketScope {
    Everything,
    /// Tickets filed in this unit's subtree (supervisor: county or city; dispatcher: township).
    UnitSubtree(Uuid),
    /// A grid worker: tickets in their grid, any they filed themselves, and the ones their
    /// merged duplicates live on in (they follow those).
    GridWorker {
        user_id: Uuid,
        grid_id: Uuid,
    },
    /// Department staff: tickets with a dispatch to their department.
    Department(Uuid),
    /// A user missing the home their role needs sees nothing.
    Nothing,
}

pub fn ticket_scope(caller: &Caller) -> TicketScope {
    match (caller.role, caller.unit_id, caller.department_id) {
        (Role::Admin, _, _) => TicketScope::Everything,
        (Role::Supervisor | Role::Dispatcher, Some(unit), _) => TicketScope::UnitSubtree(unit),
        (Role::GridWorker, Some(grid_id), _) => TicketScope::GridWorker { user_id: caller.user_id, grid_id },
        (Role::DepartmentStaff, _, Some(department)) => TicketScope::Department(department),
        _ => TicketScope::Nothing,
    }
}

/// What the access decision for one ticket needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct TicketFacts {
    /// The ticket's unit lies in the caller's home-unit subtree.
    pub in_home_subtree: bool,
    pub filed_by: Uuid,
    /// The caller follows the ticket: they filed a duplicate that was merged into it.
    pub follows: bool,
    /// The caller's department holds a dispatch on it, and whether that one was acknowledged.
    pub department_dispatch: Option<DepartmentDispatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepartmentDispatch {
    NotYetAcknowledged,
    Acknowledged,
}

pub fn may_see_ticket(caller: &Caller, facts: &TicketFacts) -> bool {
    match ticket_scope(caller) {
        TicketScope::Everything => true,
        TicketScope::UnitSubtree(_) => facts.in_home_subtree,
        TicketScope::GridWorker { user_id, .. } => facts.in_home_subtree || facts.filed_by == user_id || facts.follows,
        TicketScope::Department(_) => facts.department_dispatch.is_some(),
        TicketScope::Nothing => false,
    }
}

/// Department staff see their own department's dispatches and orders, not their partners' on
/// the same ticket: the department to filter on, if any.
pub fn own_department_only(caller: &Caller) -> Option<Uuid> {
    (caller.role == Role::DepartmentStaff).then(|| caller.department_id.unwrap_or_default())
}

/// Whether a department's item (dispatch, order) is the caller's to see or act on.
pub fn is_own_department(caller: &Caller, department: Option<Uuid>) -> bool {
    caller.role != Role::DepartmentStaff || (department.is_some() && department == caller.department_id)
}

/// A grid worker records ratings only for tickets they filed; a dispatcher for any in scope.
pub fn may_rate(caller: &Caller, filed_by: Uuid) -> bool {
    caller.role != Role::GridWorker || filed_by == caller.user_id
}

/// Residents' names and phones, unmasked: only for the people who must call them back —
/// the filing grid worker, the dispatcher in charge, a department that has reported in.
pub fn may_see_contact(caller: &Caller, facts: &TicketFacts) -> bool {
    match caller.role {
        Role::GridWorker => facts.filed_by == caller.user_id,
        Role::Dispatcher => facts.in_home_subtree,
        Role::DepartmentStaff => facts.department_dispatch == Some(DepartmentDispatch::Acknowledged),
        Role::Supervisor | Role::Admin => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_manages() {
        for role in [Role::GridWorker, Role::Dispatcher, Role::DepartmentStaff, Role::Supervisor] {
            assert!(!role_may(role, Permission::ManageReferenceData), "{role:?}");
            assert!(!role_may(role, Permission::ManageUsers), "{role:?}");
            assert!(role_may(role, Permission::ReadReferenceData), "{role:?}");
        }
        assert!(role_may(Role::Admin, Permission::ManageReferenceData));
        assert!(role_may(Role::Admin, Permission::ManageUsers));
        assert!(role_may(Role::Dispatcher, Permission::ReadRouting));
        assert!(!role_may(Role::GridWorker, Permission::ReadRouting));
        assert!(!role_may(Role::DepartmentStaff, Permission::ReadUsers));
    }
}
