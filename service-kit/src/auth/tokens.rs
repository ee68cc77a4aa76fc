//! The tokens file: who may call the API (the submitter's and the dashboard's), with which roles, for which tenant.
//!
//! Only SHA-256 digests of tokens are stored, so the file is no secret worth stealing. A
//! presented token is hashed and compared with *every* entry in constant time: neither the
//! position of the first differing byte nor which entry matched shows in the timing. The
//! compare is written out here rather than taken from `subtle`, which this workspace cannot
//! fetch; it is eight lines and is tested below.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submit and cancel jobs (of its tenant).
    Submit,
    /// Read, list, wait for and read the logs of jobs (of its tenant).
    Read,
    /// Everything, for every tenant unless the token names one, plus the scheduler's
    /// status and policy.
    Admin,
}

/// The file: `{"tokens":[{"name","sha256","roles":[…],"tenant"}…]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    roles: Vec<Role>,
    #[serde(default)]
    tenant: Option<String>,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The entry's name, for logs (never the token).
    pub name: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// The only tenant it may act for; `None` for a tenant-less admin (all tenants).
    pub tenant: Option<String>,
}

/// The loaded tokens file.
#[derive(Debug)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Principal)>,
}

/// Hex SHA-256 of a token, as the tokens file stores it (`warren admin hash-token`, or
/// `printf %s TOKEN | sha256sum`).
#[must_use]
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TokenTable {
    /// Reads and checks the tokens file at `path`.
    ///
    /// # Errors
    /// Fails when the file cannot be read or is not a valid tokens file; the message names
    /// the file and what to fix.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading WARREN_TOKENS_FILE {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in WARREN_TOKENS_FILE {}", path.display()))
    }

    /// Parses and checks the text of a tokens file.
    ///
    /// # Errors
    /// Fails, saying what to fix, when the text is not a valid tokens file.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: TokensFile = serde_json::from_str(text).context("not a valid tokens file")?;
        anyhow::ensure!(!file.tokens.is_empty(), "the file names no token");
        let mut names = HashSet::new();
        let mut digests = HashSet::new();
        let mut entries = Vec::with_capacity(file.tokens.len());
        for entry in file.tokens {
            let name = entry.name;
            anyhow::ensure!(!name.is_empty(), "a token has an empty name");
            anyhow::ensure!(
                names.insert(name.clone()),
                "token name {name:?} appears twice"
            );
            let digest = parse_digest(&entry.sha256).with_context(|| {
                format!("token {name:?}: sha256 must be 64 hex digits (warren admin hash-token)")
            })?;
            anyhow::ensure!(
                digests.insert(digest),
                "token {name:?}: the same hash appears twice"
            );
            anyhow::ensure!(!entry.roles.is_empty(), "token {name:?} has no role");
            let admin = entry.roles.contains(&Role::Admin);
            if let Some(tenant) = &entry.tenant {
                // The same rule as a spec's tenant, so a bound token can always submit.
                let valid = (1..=64).contains(&tenant.len())
                    && tenant.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && tenant
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                anyhow::ensure!(
                    valid,
                    "token {name:?}: tenant {tenant:?} must be 1 to 64 of [A-Za-z0-9._-]"
                );
            } else {
                anyhow::ensure!(
                    admin,
                    "token {name:?} names no tenant: only an admin token may act for all tenants"
                );
            }
            entries.push((
                digest,
                Principal {
                    name,
                    roles: entry.roles,
                    tenant: entry.tenant,
                },
            ));
        }
        Ok(Self { entries })
    }

    /// Counts the tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no token (never, once loaded: an empty file is refused).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Finds the owner of `token`, looking at every entry whatever matches.
    #[must_use]
    pub fn find(&self, token: &str) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (stored, principal) in &self.entries {
            if constant_time_eq(stored, &digest) {
                found = Some(principal);
            }
        }
        found
    }
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Compares without an early exit; `black_box` keeps the compiler from adding one.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TokenTable {
        let text = serde_json::json!({"tokens": [
            {"name": "a", "sha256": hash_token("tok-a"), "roles": ["submit", "read"], "tenant": "team-a"},
            {"name": "root", "sha256": hash_token("tok-root").to_uppercase(), "roles": ["admin"]},
        ]});
        TokenTable::parse(&text.to_string()).unwrap()
    }

    #[test]
    fn tokens_are_found_by_their_hash() {
        let t = table();
        let a = t.find("tok-a").unwrap();
        assert_eq!(a.name, "a");
        assert_eq!(a.tenant.as_deref(), Some("team-a"));
        assert_eq!(t.find("tok-root").unwrap().roles, vec![Role::Admin]);
        assert!(t.find("tok-b").is_none());
        assert!(t.find("").is_none());
    }

    #[test]
    fn known_hash_matches_sha256sum() {
        // printf %s secret | sha256sum
        assert_eq!(
            hash_token("secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
    }

    #[test]
    fn bad_files_are_refused() {
        let h = hash_token("x");
        for (text, why) in [
            (r#"{"tokens":[]}"#.to_owned(), "no token"),
            (
                format!(r#"{{"tokens":[{{"name":"a","sha256":"{h}","roles":["read"]}}]}}"#),
                "names no tenant",
            ),
            (
                format!(r#"{{"tokens":[{{"name":"a","sha256":"{h}","roles":[],"tenant":"t"}}]}}"#),
                "no role",
            ),
            (
                r#"{"tokens":[{"name":"a","sha256":"abc","roles":["read"],"tenant":"t"}]}"#
                    .to_owned(),
                "64 hex",
            ),
            (
                format!(
                    r#"{{"tokens":[{{"name":"a","sha256":"{h}","roles":["root"],"tenant":"t"}}]}}"#
                ),
                "valid tokens file",
            ),
        ] {
            let err = format!("{:#}", TokenTable::parse(&text).unwrap_err());
            assert!(err.contains(why), "{err} should say {why}");
        }
    }

    #[test]
    fn compare_is_exact() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}
