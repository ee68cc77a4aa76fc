//! Who is calling an HTTP service: the tokens file (bearer tokens stored as SHA-256 hashes,
//! their roles and tenants), the `WARREN_TOKENS_FILE` / `WARREN_NO_AUTH` settings, and the
//! rules both the submitter and the dashboard apply to a caller (roles, tenant scoping).
//!
//! Each service turns a failed check into its own HTTP answer; what a token may do is decided
//! here, once, so the two services cannot drift apart.

mod tokens;

use std::path::{Path, PathBuf};

pub use tokens::{Principal, Role, TokenTable, hash_token};

/// The token settings shared by every service that takes tokens.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// JSON file of bearer tokens (SHA-256 hashes), their roles and tenants; see the
    /// submitter's README. Required unless --no-auth is given.
    #[arg(long, env = "WARREN_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Serve without authentication: every caller may do everything, for every tenant.
    /// For local use only; a warning is logged at start.
    #[arg(long, env = "WARREN_NO_AUTH")]
    pub no_auth: bool,
}

impl AuthArgs {
    /// No authentication: for `warren up` without a tokens file, and tests.
    #[must_use]
    pub fn off() -> Self {
        Self {
            tokens_file: None,
            no_auth: true,
        }
    }

    /// Tokens from `path`.
    #[must_use]
    pub fn tokens(path: impl Into<PathBuf>) -> Self {
        Self {
            tokens_file: Some(path.into()),
            no_auth: false,
        }
    }

    /// Checks the two settings together and loads the tokens file.
    ///
    /// # Errors
    /// Fails when both or neither are set, or when the tokens file is not valid.
    pub fn load(&self) -> anyhow::Result<Auth> {
        Auth::load(self.tokens_file.as_deref(), self.no_auth)
    }
}

/// Whether requests must carry a token.
#[derive(Debug)]
pub enum Auth {
    /// `--no-auth`: everyone is a tenant-less admin.
    Off,
    /// Tokens from the tokens file.
    Tokens(TokenTable),
}

impl Auth {
    /// Loads the tokens file, refusing to serve without one unless `no_auth` says so, and
    /// refusing both at once (which one was meant is anyone's guess).
    ///
    /// # Errors
    /// Fails with a message naming the settings to fix, or the tokens file's problem.
    pub fn load(tokens_file: Option<&Path>, no_auth: bool) -> anyhow::Result<Self> {
        Self::check(tokens_file, no_auth)?;
        match tokens_file {
            Some(path) => Ok(Self::Tokens(TokenTable::load(path)?)),
            None => Ok(Self::Off),
        }
    }

    /// Checks that exactly one of the two settings is given, without reading the file.
    ///
    /// # Errors
    /// Fails with a message naming the settings to fix.
    pub fn check(tokens_file: Option<&Path>, no_auth: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            !(tokens_file.is_some() && no_auth),
            "WARREN_TOKENS_FILE and WARREN_NO_AUTH contradict each other: set one"
        );
        anyhow::ensure!(
            tokens_file.is_some() || no_auth,
            "the API needs WARREN_TOKENS_FILE (--tokens-file), or WARREN_NO_AUTH=true \
             (--no-auth) to serve without authentication"
        );
        Ok(())
    }

    /// The caller presenting `token` (`None` for a token nobody has). With auth off every
    /// caller is [`Principal::anonymous`], whatever it presents.
    #[must_use]
    pub fn identify(&self, token: Option<&str>) -> Option<Principal> {
        match self {
            Self::Off => Some(Principal::anonymous()),
            Self::Tokens(table) => table.find(token?).cloned(),
        }
    }
}

/// The token of an `Authorization` value `Bearer <token>` (the scheme is case-insensitive).
#[must_use]
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Role {
    /// The role's name, as the tokens file spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl Principal {
    /// The caller when authentication is off: a tenant-less admin named `anonymous`.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            roles: vec![Role::Admin],
            tenant: None,
        }
    }

    /// Whether the token has `role` (admin has every role).
    #[must_use]
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// `Err` with the message a 403 answers when the token lacks `role`.
    ///
    /// # Errors
    /// `this token lacks the {role} role`.
    pub fn require(&self, role: Role) -> Result<(), String> {
        if self.has(role) {
            return Ok(());
        }
        Err(format!("this token lacks the {} role", role.as_str()))
    }

    /// The only tenant this caller may see and act for; `None` means every tenant.
    #[must_use]
    pub fn tenant_scope(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether a job (or dead letter) of `tenant` is this caller's to see.
    #[must_use]
    pub fn sees(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|own| own == tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn settings_must_say_one_thing() {
        let both = Auth::load(Some(Path::new("t.json")), true).unwrap_err();
        assert!(both.to_string().contains("contradict"), "{both}");
        let neither = Auth::load(None, false).unwrap_err();
        assert!(
            neither.to_string().contains("WARREN_NO_AUTH=true"),
            "{neither}"
        );
        assert!(matches!(Auth::load(None, true), Ok(Auth::Off)));
    }

    #[test]
    fn roles_and_tenants() {
        let reader = Principal {
            name: "r".into(),
            roles: vec![Role::Read],
            tenant: Some("a".into()),
        };
        assert!(reader.has(Role::Read));
        assert_eq!(
            reader.require(Role::Admin).unwrap_err(),
            "this token lacks the admin role"
        );
        assert!(reader.sees("a") && !reader.sees("b"));
        let anyone = Principal::anonymous();
        assert!(anyone.has(Role::Submit) && anyone.sees("b"));
        let off = Auth::Off;
        assert_eq!(off.identify(None).unwrap().name, "anonymous");
    }
}
