//! The `callback_auth` fix: each bot gets a secret of its own (`BOT_CONFIG.callbackSecret`,
//! 32 random bytes in hex), and every internal callback must carry it. The service keeps
//! only what verifies it: the secret's SHA-256, bound to the meeting (in its `data`, under
//! [`DATA_KEY`]) and to the container made for it (name and id). No user-facing answer
//! shows that key ([`crate::db::Meeting::to_json`] leaves it out).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::db::Meeting;

/// The key of `meetings.data` holding a meeting's [`Binding`].
pub const DATA_KEY: &str = "callback_auth";

/// Hex digits of a secret (32 bytes).
pub const SECRET_HEX_DIGITS: usize = 64;

/// A fresh secret: 32 bytes of the thread's CSPRNG, lower-case hex.
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_HEX_DIGITS / 2] = rand::random();
    hex(&bytes)
}

/// The SHA-256 of a secret's text, hex: what the service stores of it.
pub fn secret_digest(secret: &str) -> String {
    hex(&sha256(secret))
}

/// Whether `token` has a secret's shape (64 hex digits); anything else cannot be one.
pub fn looks_like_secret(token: &str) -> bool {
    token.len() == SECRET_HEX_DIGITS && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the service stores to verify a meeting's callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// SHA-256 of the secret's text, hex.
    pub secret_sha256: String,
    pub container_name: String,
    pub container_id: String,
}

impl Binding {
    pub fn new(secret: &str, container_name: &str, container_id: &str) -> Binding {
        Binding {
            secret_sha256: secret_digest(secret),
            container_name: container_name.to_owned(),
            container_id: container_id.to_owned(),
        }
    }

    /// The binding stored with `meeting`, if any.
    pub fn of(meeting: &Meeting) -> Option<Binding> {
        serde_json::from_value(meeting.data.get(DATA_KEY)?.clone()).ok()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a binding is plain strings")
    }

    /// Whether `presented` is the secret this binding was made from. The digests are
    /// compared in constant time, so the answer's timing says nothing of how much of a
    /// guess was right.
    pub fn secret_matches(&self, presented: &str) -> bool {
        let Some(stored) = unhex32(&self.secret_sha256) else {
            return false;
        };
        constant_time_eq(&stored, &sha256(presented))
    }

    /// Whether `container` is this meeting's container, by name or by id as stored.
    pub fn names_container(&self, container: &str) -> bool {
        let container = container.trim_start_matches('/');
        !container.is_empty()
            && (container == self.container_name || container == self.container_id)
    }
}

fn sha256(text: &str) -> [u8; 32] {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the compiler from turning the fold back into an early exit.
    std::hint::black_box(difference) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_64_hex_digits_and_never_the_same_twice() {
        let (a, b) = (new_secret(), new_secret());
        assert!(looks_like_secret(&a), "{a}");
        assert_eq!(a, a.to_lowercase());
        assert_ne!(a, b);
    }

    #[test]
    fn a_binding_verifies_its_own_secret_only_and_keeps_no_copy_of_it() {
        let secret = new_secret();
        let binding = Binding::new(&secret, "vexa-bot-1-0000abcd", "c0ffee");
        assert!(binding.secret_matches(&secret));
        assert!(!binding.secret_matches(&new_secret()));
        assert!(!binding.secret_matches(""));
        assert!(!binding.to_value().to_string().contains(&secret));
        // SHA-256 of "abc", the standard's first example.
        assert_eq!(
            Binding::new("abc", "n", "i").secret_sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_binding_names_its_container_by_name_or_id_and_nothing_else() {
        let binding = Binding::new(&new_secret(), "vexa-bot-1-0000abcd", "c0ffee");
        assert!(binding.names_container("vexa-bot-1-0000abcd"));
        assert!(binding.names_container("/vexa-bot-1-0000abcd"));
        assert!(binding.names_container("c0ffee"));
        assert!(!binding.names_container("vexa-bot-2-0000abcd"));
        assert!(!binding.names_container(""));
    }

    #[test]
    fn a_corrupt_stored_digest_verifies_nothing() {
        let mut binding = Binding::new("s", "n", "i");
        binding.secret_sha256 = "zz".repeat(32);
        assert!(!binding.secret_matches("s"));
        binding.secret_sha256 = "é".repeat(32);
        assert!(!binding.secret_matches("s"));
    }
}
