//! Where a configured source's password is kept, and the other settings every configured
//! source shares. A password is never part of a source's settings (they are snapshotted,
//! diffed and audited): `password_file` or `password_env` say where it is, and it is read
//! when the source (re)connects.

use std::path::PathBuf;

/// Checks the password's location: at most one of the two, and an environment variable
/// name that can exist.
pub fn validate(file: &Option<PathBuf>, env: &Option<String>) -> Result<(), String> {
    if file.is_some() && env.is_some() {
        return Err("password_file: give either password_file or password_env, not both".into());
    }
    if let Some(env) = env {
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "password_env: must be an environment variable name, got {env:?}"
            ));
        }
    }
    Ok(())
}

/// The password, read now from where the settings say it is (a file's first line).
pub fn read(file: &Option<PathBuf>, env: &Option<String>) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("password_file {}: {err}", path.display()))?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
    }
    if let Some(name) = env {
        return std::env::var(name)
            .map(Some)
            .map_err(|_| format!("password_env: the environment variable {name} is not set"));
    }
    Ok(None)
}

/// Checks a `group` name (databases that are shards of one, caches that are levels of one).
pub fn validate_group(group: &Option<String>) -> Result<(), String> {
    match group {
        Some(group)
            if group.is_empty() || group.len() > 64 || group.chars().any(char::is_control) =>
        {
            Err(format!(
                "group: must be 1–64 printable characters, got {group:?}"
            ))
        }
        _ => Ok(()),
    }
}
