//! Account roles and API-key scopes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an account may do instance-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users and the instance.
    Admin,
    /// Uses the studio; sees only what they own.
    User,
}

impl Role {
    /// The stored / serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API key may be used for. `admin` also requires the owner to be an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyScope {
    /// Read-only access to the owner's resources.
    Read,
    /// Submit and manage generation jobs.
    Generate,
    /// Administrative endpoints (owner must be an admin).
    Admin,
}

impl ApiKeyScope {
    /// Every scope, in display order.
    pub const ALL: [ApiKeyScope; 3] = [ApiKeyScope::Read, ApiKeyScope::Generate, ApiKeyScope::Admin];

    /// The stored / serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Read => "read",
            ApiKeyScope::Generate => "generate",
            ApiKeyScope::Admin => "admin",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<ApiKeyScope> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// Encodes a set of scopes for storage (`read,generate`).
    pub fn join(scopes: &[ApiKeyScope]) -> String {
        let mut sorted = scopes.to_vec();
        sorted.sort();
        sorted.dedup();
        sorted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Decodes stored scopes, skipping unknown names (a newer binary may have written them).
    pub fn split(stored: &str) -> Vec<ApiKeyScope> {
        stored.split(',').filter_map(ApiKeyScope::parse).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        let joined = ApiKeyScope::join(&[ApiKeyScope::Generate, ApiKeyScope::Read, ApiKeyScope::Read]);
        assert_eq!(joined, "read,generate");
        assert_eq!(ApiKeyScope::split(&joined), vec![ApiKeyScope::Read, ApiKeyScope::Generate]);
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}
