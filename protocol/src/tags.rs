use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a resource tag or pool name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The tag was empty.
    #[error("tag must not be empty")]
    Empty,
    /// The tag was longer than 32 characters.
    #[error("tag {0:?} is longer than 32 characters")]
    TooLong(String),
    /// The tag had characters outside `[a-z0-9_.-]` or did not start with a letter or digit.
    #[error(
        "tag {0:?} is malformed: use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    Malformed(String),
    /// A pool name had no tags at all.
    #[error("a pool needs at least one tag")]
    EmptyPool,
}

/// One capability a worker advertises and a job may require: `gpu`, `cuda12`, `highmem`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct ResourceTag(String);

impl ResourceTag {
    /// Validates a tag.
    ///
    /// # Errors
    /// Returns a [`TagError`] saying what is wrong with it.
    pub fn new(raw: impl Into<String>) -> Result<Self, TagError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(TagError::Empty);
        }
        if raw.len() > 32 {
            return Err(TagError::TooLong(raw));
        }
        let well_formed = raw.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && raw.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if !well_formed {
            return Err(TagError::Malformed(raw));
        }
        Ok(Self(raw))
    }

    /// Returns the tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ResourceTag {
    type Error = TagError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ResourceTag> for String {
    fn from(value: ResourceTag) -> Self {
        value.0
    }
}

/// A worker pool: the canonical (sorted, deduplicated) set of tags its workers advertise.
///
/// Its text form joins the tags with `+` (`cuda12+gpu`); that is the routing key and the suffix
/// of the pool's queue name, so two workers with the same tags always share one queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolName {
    tags: BTreeSet<ResourceTag>,
}

impl PoolName {
    /// Builds a pool from its tags.
    ///
    /// # Errors
    /// Returns [`TagError::EmptyPool`] when there are no tags.
    pub fn from_tags(tags: impl IntoIterator<Item = ResourceTag>) -> Result<Self, TagError> {
        let tags: BTreeSet<_> = tags.into_iter().collect();
        if tags.is_empty() {
            return Err(TagError::EmptyPool);
        }
        Ok(Self { tags })
    }

    /// Parses a comma- or plus-separated tag list (`gpu,cuda12` or `cuda12+gpu`).
    ///
    /// # Errors
    /// Returns a [`TagError`] for the first bad tag, or when the list is empty.
    pub fn parse_list(raw: &str) -> Result<Self, TagError> {
        let tags = raw
            .split([',', '+'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(ResourceTag::new)
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_tags(tags)
    }

    /// Returns the pool's tags, sorted.
    pub fn tags(&self) -> &BTreeSet<ResourceTag> {
        &self.tags
    }

    /// Tells whether this pool has every tag in `required`.
    pub fn covers(&self, required: &BTreeSet<ResourceTag>) -> bool {
        required.is_subset(&self.tags)
    }

    /// Counts the tags this pool has that `required` does not ask for: the "waste" of sending
    /// such a job here (a GPU machine running CPU work).
    pub fn unneeded_tags(&self, required: &BTreeSet<ResourceTag>) -> usize {
        self.tags.difference(required).count()
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for tag in &self.tags {
            if !first {
                f.write_str("+")?;
            }
            f.write_str(tag.as_str())?;
            first = false;
        }
        Ok(())
    }
}

impl TryFrom<String> for PoolName {
    type Error = TagError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_list(&value)
    }
}

impl From<PoolName> for String {
    fn from(value: PoolName) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> BTreeSet<ResourceTag> {
        list.iter().map(|t| ResourceTag::new(*t).unwrap()).collect()
    }

    #[test]
    fn tags_are_validated() {
        assert!(ResourceTag::new("gpu").is_ok());
        assert!(ResourceTag::new("cuda12.2").is_ok());
        assert_eq!(ResourceTag::new(""), Err(TagError::Empty));
        assert!(matches!(
            ResourceTag::new("GPU"),
            Err(TagError::Malformed(_))
        ));
        assert!(matches!(
            ResourceTag::new("-x"),
            Err(TagError::Malformed(_))
        ));
        assert!(matches!(
            ResourceTag::new("a b"),
            Err(TagError::Malformed(_))
        ));
        assert!(matches!(
            ResourceTag::new("x".repeat(33)),
            Err(TagError::TooLong(_))
        ));
    }

    #[test]
    fn pool_names_are_canonical() {
        let a = PoolName::parse_list("gpu,cuda12").unwrap();
        let b = PoolName::parse_list("cuda12+gpu+gpu").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "cuda12+gpu");
        assert_eq!(PoolName::parse_list(" , "), Err(TagError::EmptyPool));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"cuda12+gpu\"");
        assert_eq!(serde_json::from_str::<PoolName>(&json).unwrap(), a);
    }

    #[test]
    fn pools_cover_required_tags_and_count_waste() {
        let pool = PoolName::parse_list("gpu,cuda12,cpu").unwrap();
        assert!(pool.covers(&tags(&["gpu"])));
        assert!(pool.covers(&tags(&[])));
        assert!(!pool.covers(&tags(&["gpu", "highmem"])));
        assert_eq!(pool.unneeded_tags(&tags(&["gpu"])), 2);
    }
}
