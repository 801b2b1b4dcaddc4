//! Secrets (API keys, tokens) live only in the OS credential store, never
//! in cowork.db, config files or logs.
//! - Linux: the kernel key retention service: the uid's persistent keyring
//!   (it outlives logins; the kernel drops it after days unused), else the
//!   user keyring.
//! - macOS: the login Keychain, as generic passwords of the service
//!   `cowork` (account: the secret's description).

/// A secret store failure.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The store refused.
    #[error("the credential store refused {what}: {reason}")]
    Store {
        /// What was attempted.
        what: String,
        /// Why.
        reason: String,
    },
    /// No store on this platform.
    #[error("no OS credential store is available on this platform")]
    Unsupported,
}

static SCOPE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Scope every secret of this process to one Cowork home (two homes of one
/// user never see each other's secrets). Set once, at start.
pub fn set_scope(home: &std::path::Path) {
    use sha2::Digest;
    let h = sha2::Sha256::digest(home.as_os_str().as_encoded_bytes());
    let hex: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let _ = SCOPE.set(hex);
}

/// The description a secret is kept under: `cowork:<home scope>:<name>`.
pub fn description(name: &str) -> String {
    let scope = SCOPE.get().map(String::as_str).unwrap_or("default");
    format!("cowork:{scope}:{name}")
}

#[cfg(target_os = "linux")]
fn keyring() -> Result<linux_keyutils::KeyRing, SecretError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    KeyRing::get_persistent(KeyRingIdentifier::Process)
        .or_else(|_| KeyRing::from_special_id(KeyRingIdentifier::User, true))
        .map_err(|e| SecretError::Store {
            what: "opening the keyring".into(),
            reason: e.to_string(),
        })
}

/// Store (or replace) the secret `name`.
#[cfg(target_os = "linux")]
pub fn put(name: &str, value: &str) -> Result<(), SecretError> {
    keyring()?
        .add_key(&description(name), value.as_bytes())
        .map(|_| ())
        .map_err(|e| SecretError::Store {
            what: format!("storing {name}"),
            reason: e.to_string(),
        })
}

/// Read the secret `name` (None when absent).
#[cfg(target_os = "linux")]
pub fn get(name: &str) -> Result<Option<String>, SecretError> {
    match keyring()?.search(&description(name)) {
        Ok(k) => k
            .read_to_vec()
            .map(|v| Some(String::from_utf8_lossy(&v).into_owned()))
            .map_err(|e| SecretError::Store {
                what: format!("reading {name}"),
                reason: e.to_string(),
            }),
        Err(_) => Ok(None),
    }
}

/// Delete the secret `name` (absent is fine).
#[cfg(target_os = "linux")]
pub fn delete(name: &str) -> Result<(), SecretError> {
    if let Ok(k) = keyring()?.search(&description(name)) {
        k.invalidate().map_err(|e| SecretError::Store {
            what: format!("deleting {name}"),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// The Keychain service every Cowork secret is filed under.
#[cfg(target_os = "macos")]
const KEYCHAIN_SERVICE: &str = "cowork";

/// errSecItemNotFound.
#[cfg(target_os = "macos")]
const ITEM_NOT_FOUND: i32 = -25300;

/// Store (or replace) the secret `name`.
#[cfg(target_os = "macos")]
pub fn put(name: &str, value: &str) -> Result<(), SecretError> {
    security_framework::passwords::set_generic_password(
        KEYCHAIN_SERVICE,
        &description(name),
        value.as_bytes(),
    )
    .map_err(|e| SecretError::Store {
        what: format!("storing {name}"),
        reason: e.to_string(),
    })
}

/// Read the secret `name` (None when absent).
#[cfg(target_os = "macos")]
pub fn get(name: &str) -> Result<Option<String>, SecretError> {
    match security_framework::passwords::get_generic_password(KEYCHAIN_SERVICE, &description(name))
    {
        Ok(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
        Err(e) if e.code() == ITEM_NOT_FOUND => Ok(None),
        Err(e) => Err(SecretError::Store {
            what: format!("reading {name}"),
            reason: e.to_string(),
        }),
    }
}

/// Delete the secret `name` (absent is fine).
#[cfg(target_os = "macos")]
pub fn delete(name: &str) -> Result<(), SecretError> {
    match security_framework::passwords::delete_generic_password(
        KEYCHAIN_SERVICE,
        &description(name),
    ) {
        Err(e) if e.code() != ITEM_NOT_FOUND => Err(SecretError::Store {
            what: format!("deleting {name}"),
            reason: e.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Store (or replace) the secret `name`.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn put(_: &str, _: &str) -> Result<(), SecretError> {
    Err(SecretError::Unsupported)
}

/// Read the secret `name`.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn get(_: &str) -> Result<Option<String>, SecretError> {
    Err(SecretError::Unsupported)
}

/// Delete the secret `name`.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn delete(_: &str) -> Result<(), SecretError> {
    Err(SecretError::Unsupported)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_the_kernel_keyring() {
        let name = format!("test/{}/{}", std::process::id(), crate::util::new_id("k"));
        assert_eq!(get(&name).unwrap(), None);
        put(&name, "s3cr3t ✓").unwrap();
        assert_eq!(get(&name).unwrap().as_deref(), Some("s3cr3t ✓"));
        put(&name, "rotated").unwrap();
        assert_eq!(get(&name).unwrap().as_deref(), Some("rotated"));
        delete(&name).unwrap();
        assert_eq!(get(&name).unwrap(), None);
        delete(&name).unwrap();
    }
}
