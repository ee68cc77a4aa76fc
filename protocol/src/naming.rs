use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct NameError {
    /// What kind of name it was (namespace, queue, tenant).
    pub what: &'static str,
    /// The refused value.
    pub value: String,
    /// What to fix.
    pub why: &'static str,
}

/// Checks a short identifier: 1..=64 characters of `[A-Za-z0-9._-]`, starting alphanumeric.
pub(crate) fn check_identifier(what: &'static str, value: &str) -> Result<(), NameError> {
    let refuse = |why| {
        Err(NameError {
            what,
            value: value.to_owned(),
            why,
        })
    };
    if value.is_empty() {
        return refuse("must not be empty");
    }
    if value.len() > 64 {
        return refuse("must be at most 64 characters");
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return refuse("must start with a letter or digit");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return refuse("may only contain letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// The prefix of every AMQP name and Redis key a deployment uses.
///
/// Production uses the default, `warren`; every test uses its own random namespace, which is
/// what lets tests run in parallel against one RabbitMQ and one Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Namespace(String);

impl Namespace {
    /// Validates a namespace.
    ///
    /// # Errors
    /// Returns a [`NameError`] when the name is empty, too long or has characters that are not
    /// safe in both AMQP names and Redis keys.
    pub fn new(raw: impl Into<String>) -> Result<Self, NameError> {
        let raw = raw.into();
        check_identifier("namespace", &raw)?;
        Ok(Self(raw))
    }

    /// Returns the namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self("warren".to_owned())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Namespace {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Namespace {
    type Error = NameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Namespace> for String {
    fn from(value: Namespace) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_checked() {
        assert!(Namespace::new("warren-test-ab12").is_ok());
        assert!(Namespace::new("").is_err());
        assert!(Namespace::new("-x").is_err());
        assert!(Namespace::new("a b").is_err());
        assert!(Namespace::new("a:b").is_err());
        assert!(Namespace::new("x".repeat(65)).is_err());
    }
}
