//! HMAC-SHA256 signatures on job and cancel messages.
//!
//! Anyone who can publish to RabbitMQ could otherwise hand a worker a job, or cancel one.
//! With keys configured, every job message Warren publishes carries a signature over its
//! message id (the job id), its destination and its exact body, and the consumers (the
//! scheduler's intake and delay ladder, the workers' queues and control bindings) refuse a
//! message whose signature is missing or does not verify.
//!
//! The destination is signed so that a message cannot be replayed elsewhere: one signed for
//! intake is refused by a worker, one for worker `a` by worker `b`.

use std::fmt;
use std::sync::Arc;

use deadpool_lapin::lapin::BasicProperties;
use deadpool_lapin::lapin::types::{AMQPValue, FieldTable};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use warren_protocol::{PoolName, WorkerId};

use crate::headers::header_str;

/// Header holding the signature: lowercase hex of the HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "x-warren-signature";
/// Header naming the destination the message was signed for (see [`Destination`]).
pub const SIGNED_FOR_HEADER: &str = "x-warren-signed-for";

/// Shortest key accepted: a shorter one could be guessed offline from one signed message.
pub const MIN_KEY_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Where a signed message is meant to go; part of what is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The scheduler's intake queue.
    Intake,
    /// The delay ladder (released to intake by the scheduler).
    Delay,
    /// One worker's own queue.
    Worker(WorkerId),
    /// A pool's shared queue.
    Pool(PoolName),
    /// The control exchange's cancel broadcast.
    Cancel,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Intake => f.write_str("intake"),
            Self::Delay => f.write_str("delay"),
            Self::Worker(id) => write!(f, "worker:{id}"),
            Self::Pool(pool) => write!(f, "pool:{pool}"),
            Self::Cancel => f.write_str("cancel"),
        }
    }
}

/// The keys of a deployment: the first signs, every one verifies (so a key can be rotated
/// in: add the new one second everywhere, then make it first, then drop the old one).
#[derive(Clone)]
pub struct SigningKeys {
    keys: Arc<[Vec<u8>]>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeys({} key(s), redacted)", self.keys.len())
    }
}

impl SigningKeys {
    /// Builds the key list from text: keys separated by commas, spaces or newlines (the
    /// first signs). Each key is used as its UTF-8 bytes.
    ///
    /// # Errors
    /// A description of what to fix when there is no key or one is shorter than
    /// [`MIN_KEY_BYTES`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let keys: Vec<Vec<u8>> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec())
            .collect();
        if keys.is_empty() {
            return Err("no signing key given (keys are separated by commas or newlines)".into());
        }
        if let Some(position) = keys.iter().position(|k| k.len() < MIN_KEY_BYTES) {
            return Err(format!(
                "signing key {} is {} bytes; use at least {MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)",
                position + 1,
                keys[position].len()
            ));
        }
        Ok(Self { keys: keys.into() })
    }

    fn mac(key: &[u8], message_id: &str, to: &str, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        // NUL-separated: neither a destination nor a job id holds one, so no two
        // different triples give the same input.
        mac.update(b"warren-signature-v1\0");
        mac.update(to.as_bytes());
        mac.update(b"\0");
        mac.update(message_id.as_bytes());
        mac.update(b"\0");
        mac.update(body);
        mac
    }

    /// Signs with the first key; returns lowercase hex.
    pub fn sign(&self, message_id: &str, to: &Destination, body: &[u8]) -> String {
        let tag = Self::mac(&self.keys[0], message_id, &to.to_string(), body)
            .finalize()
            .into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Tells whether `signature` (hex) is the signature of the message under any key,
    /// comparing in constant time.
    pub fn verify(&self, message_id: &str, to: &str, body: &[u8], signature: &str) -> bool {
        let Some(tag) = from_hex(signature) else {
            return false;
        };
        self.keys.iter().any(|key| {
            Self::mac(key, message_id, to, body)
                .verify_slice(&tag)
                .is_ok()
        })
    }

    /// Adds the signature headers to a message's properties.
    pub fn sign_properties(
        &self,
        properties: BasicProperties,
        message_id: &str,
        to: &Destination,
        body: &[u8],
    ) -> BasicProperties {
        let mut headers = properties.headers().clone().unwrap_or_default();
        insert_signature(&mut headers, self.sign(message_id, to, body), to);
        properties.with_headers(headers)
    }

    /// Checks a consumed message: it must be signed for one of `expected` destinations, and
    /// its signature must verify.
    ///
    /// # Errors
    /// The reason to dead-letter the message with.
    pub fn check(
        &self,
        properties: &BasicProperties,
        body: &[u8],
        expected: &[Destination],
    ) -> Result<(), String> {
        let Some(signature) = header_str(properties, SIGNATURE_HEADER) else {
            return Err(format!(
                "unsigned job message (no {SIGNATURE_HEADER} header), refused: this deployment signs its messages"
            ));
        };
        let to = header_str(properties, SIGNED_FOR_HEADER).unwrap_or("");
        if !expected.iter().any(|d| d.to_string() == to) {
            let wanted: Vec<String> = expected.iter().map(ToString::to_string).collect();
            return Err(format!(
                "job message signed for {to:?}, not for {}: refused",
                wanted.join(" or ")
            ));
        }
        let message_id = properties
            .message_id()
            .as_ref()
            .map_or("", |id| id.as_str());
        if self.verify(message_id, to, body, signature) {
            Ok(())
        } else {
            Err("job message with a bad signature (forged, altered, or signed with a key this service does not have): refused".into())
        }
    }
}

fn insert_signature(headers: &mut FieldTable, signature: String, to: &Destination) {
    headers.insert(
        SIGNATURE_HEADER.into(),
        AMQPValue::LongString(signature.into()),
    );
    headers.insert(
        SIGNED_FOR_HEADER.into(),
        AMQPValue::LongString(to.to_string().into()),
    );
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The keys configured for a service (`WARREN_SIGNING_KEY` or its file), warning when there
/// are none, since then anyone who can publish to RabbitMQ can run and cancel jobs.
///
/// # Errors
/// What to fix in the key text.
pub fn from_config(text: Option<&str>) -> Result<Option<SigningKeys>, String> {
    match text {
        Some(text) => SigningKeys::parse(text)
            .map(Some)
            .map_err(|e| format!("WARREN_SIGNING_KEY: {e}")),
        None => {
            tracing::warn!(
                "job messages are not signed (no WARREN_SIGNING_KEY): anyone who can publish to \
                 RabbitMQ can run or cancel jobs"
            );
            Ok(None)
        }
    }
}

/// Checks a consumed message against the keys, if any.
///
/// # Errors
/// The reason to refuse it (see [`SigningKeys::check`]); never with `keys` `None`.
pub fn check_message(
    keys: Option<&SigningKeys>,
    properties: &BasicProperties,
    body: &[u8],
    expected: &[Destination],
) -> Result<(), String> {
    match keys {
        Some(keys) => keys.check(properties, body, expected),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use deadpool_lapin::lapin::types::ShortString;

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const OLD: &str = "fedcba9876543210fedcba9876543210";

    fn props(id: &str) -> BasicProperties {
        BasicProperties::default().with_message_id(ShortString::from(id))
    }

    #[test]
    fn signed_messages_verify_and_altered_ones_do_not() {
        let keys = SigningKeys::parse(KEY).unwrap();
        let signed = keys.sign_properties(props("j1"), "j1", &Destination::Intake, b"{}");
        assert!(keys.check(&signed, b"{}", &[Destination::Intake]).is_ok());
        let altered = keys
            .check(&signed, b"{ }", &[Destination::Intake])
            .unwrap_err();
        assert!(altered.contains("bad signature"), "{altered}");
        let elsewhere = keys
            .check(&signed, b"{}", &[Destination::Delay])
            .unwrap_err();
        assert!(elsewhere.contains("signed for \"intake\""), "{elsewhere}");
        let unsigned = keys
            .check(&props("j1"), b"{}", &[Destination::Intake])
            .unwrap_err();
        assert!(unsigned.contains("unsigned"), "{unsigned}");
        // The job id is signed too.
        let mut moved = signed.clone();
        moved = moved.with_message_id(ShortString::from("j2"));
        assert!(keys.check(&moved, b"{}", &[Destination::Intake]).is_err());
    }

    #[test]
    fn every_key_verifies_and_the_first_signs() {
        let old = SigningKeys::parse(OLD).unwrap();
        let rotated = SigningKeys::parse(&format!("{KEY},\n{OLD}")).unwrap();
        let by_old = old.sign_properties(props("j"), "j", &Destination::Cancel, b"x");
        assert!(rotated.check(&by_old, b"x", &[Destination::Cancel]).is_ok());
        let by_new = rotated.sign_properties(props("j"), "j", &Destination::Cancel, b"x");
        assert!(old.check(&by_new, b"x", &[Destination::Cancel]).is_err());
        let wrong = SigningKeys::parse(&KEY.replace('0', "1")).unwrap();
        assert!(wrong.check(&by_new, b"x", &[Destination::Cancel]).is_err());
    }

    #[test]
    fn short_or_missing_keys_are_refused() {
        assert!(
            SigningKeys::parse(" , \n")
                .unwrap_err()
                .contains("no signing key")
        );
        let short = SigningKeys::parse(&format!("{KEY},short")).unwrap_err();
        assert!(short.contains("key 2 is 5 bytes"), "{short}");
        assert!(!format!("{:?}", SigningKeys::parse(KEY).unwrap()).contains(KEY));
    }

    #[test]
    fn garbage_signatures_do_not_verify() {
        let keys = SigningKeys::parse(KEY).unwrap();
        for bad in ["", "zz", "abc", "é1", &"00".repeat(32)] {
            assert!(!keys.verify("j", "intake", b"", bad), "{bad}");
        }
    }
}
