//! Deserializers that refuse a JSON object with the same key twice.
//!
//! Serde's maps (and `serde_json::Value`) keep the last of repeated keys. A proxy or an
//! approval step that reads the same body with a first-wins parser would then approve a
//! different command than the one that runs (`{"argv": ["ls"], "argv": ["rm", "-rf", "/"]}`),
//! so every user-supplied object in a spec is parsed with these instead.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Deserializes a string-to-string map, failing on a repeated key.
pub(crate) fn unique_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct MapVisitor;

    impl<'de> Visitor<'de> for MapVisitor {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some(key) = access.next_key::<String>()? {
                if map.contains_key(&key) {
                    return Err(duplicate(&key));
                }
                let value = access.next_value::<String>()?;
                map.insert(key, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(MapVisitor)
}

/// Deserializes any JSON value, failing on a repeated key in any object inside it.
pub(crate) fn unique_value<'de, D>(deserializer: D) -> Result<Value, D::Error>
where
    D: Deserializer<'de>,
{
    UniqueValue::deserialize(deserializer).map(|v| v.0)
}

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format!(
        "duplicate key {key:?}: each key may appear once in an object"
    ))
}

/// A `Value` whose objects had no repeated keys.
struct UniqueValue(Value);

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = UniqueValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<UniqueValue, E> {
        // Same as serde_json: a non-finite float has no JSON form.
        Ok(UniqueValue(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Null))
    }

    fn visit_none<E>(self) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<UniqueValue, D::Error> {
        UniqueValue::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<UniqueValue, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueValue(item)) = access.next_element()? {
            items.push(item);
        }
        Ok(UniqueValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueValue, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(duplicate(&key));
            }
            let UniqueValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(UniqueValue(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "unique_value")]
        args: Value,
        #[serde(default, deserialize_with = "unique_map")]
        labels: BTreeMap<String, String>,
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        for body in [
            r#"{"args": {"argv": ["ls"], "argv": ["rm"]}}"#,
            r#"{"args": {"env": {"A": "1", "A": "2"}}}"#,
            r#"{"args": [{"x": 1, "x": 1}]}"#,
            r#"{"labels": {"k": "a", "k": "b"}}"#,
        ] {
            let err = serde_json::from_str::<Probe>(body).unwrap_err();
            assert!(err.to_string().contains("duplicate key"), "{body}: {err}");
        }
    }

    #[test]
    fn distinct_keys_and_every_json_kind_pass() {
        let body =
            r#"{"args": {"a": [1, -2, 2.5, true, null, "s", {"b": {}}]}, "labels": {"k": "v"}}"#;
        let probe: Probe = serde_json::from_str(body).unwrap();
        assert_eq!(
            probe.args,
            serde_json::json!({"a": [1, -2, 2.5, true, null, "s", {"b": {}}]})
        );
        assert_eq!(probe.labels["k"], "v");
        // From an already-parsed value too (the envelope path).
        let again: Probe = serde_json::from_value(serde_json::json!({"args": probe.args})).unwrap();
        assert_eq!(again.args["a"][0], 1);
    }
}
