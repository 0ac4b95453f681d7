//! Who may do what: the one table of role permissions. Services ask it; handlers never
//! check roles themselves. (Jurisdiction scoping of tickets will extend this module.)

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
}

pub fn role_may(role: Role, permission: Permission) -> bool {
    use Permission::*;
    use Role::*;
    match permission {
        ReadReferenceData => true,
        ReadRouting => matches!(role, Admin | Supervisor | Dispatcher),
        ReadUsers => matches!(role, Admin | Supervisor),
        ManageReferenceData | ManageUsers => role == Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_manages() {
        for role in [
            Role::GridWorker,
            Role::Dispatcher,
            Role::DepartmentStaff,
            Role::Supervisor,
        ] {
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
