//! Where a configured source's password is kept, and the other settings every configured
//! source shares. A password is never part of a source's settings (they are snapshotted,
//! diffed and audited): `password_file` or `password_env` say where it is, and it is read
//! when the source (re)connects.

use std::path::{Path, PathBuf};

use crate::Refusal;

/// Checks the password's location: at most one of the two, and an environment variable
/// name that can exist.
pub fn validate(file: &Option<PathBuf>, env: &Option<String>) -> Result<(), Refusal> {
    if file.is_some() && env.is_some() {
        return Err(Refusal::new(
            "password_file",
            "give either password_file or password_env, not both",
        ));
    }
    if let Some(env) = env {
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Refusal::new(
                "password_env",
                format!("must be an environment variable name, got {env:?}"),
            ));
        }
    }
    Ok(())
}

/// The password, read now from where the settings say it is (a file's first line). The
/// file is read on the blocking pool, never on the async runtime, and only a regular file
/// of at most 64 KiB ([`crate::files::SECRET_CAP`]): a FIFO, a device or a directory is
/// refused before it is opened.
pub async fn read(file: &Option<PathBuf>, env: &Option<String>) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let bytes = crate::files::read("password_file", path, crate::files::SECRET_CAP).await?;
        return first_line(path, bytes).map(Some);
    }
    from_env(env)
}

/// [`read`] for a caller that may block (on the blocking pool, or building a source).
pub fn read_blocking(
    file: &Option<PathBuf>,
    env: &Option<String>,
) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let bytes = crate::files::read_blocking("password_file", path, crate::files::SECRET_CAP)?;
        return first_line(path, bytes).map(Some);
    }
    from_env(env)
}

/// A password file's first line (without its line ending).
fn first_line(path: &Path, bytes: Vec<u8>) -> Result<String, String> {
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("password_file: {} is not UTF-8 text", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn from_env(env: &Option<String>) -> Result<Option<String>, String> {
    if let Some(name) = env {
        return std::env::var(name)
            .map(Some)
            .map_err(|_| format!("password_env: the environment variable {name} is not set"));
    }
    Ok(None)
}

/// The bound every stored `group` already meets (1–64 characters, no control character),
/// checked by each kind's settings, so a running source built from stored settings keeps
/// working; new groups follow [`check_group`].
pub fn validate_group(group: &Option<String>) -> Result<(), Refusal> {
    match group {
        Some(group)
            if group.is_empty() || group.len() > 64 || group.chars().any(char::is_control) =>
        {
            Err(Refusal::new(
                "group",
                format!("must be 1–64 printable characters, got {group:?}"),
            ))
        }
        _ => Ok(()),
    }
}

/// The rule of a new `group` key (databases that are shards of one, caches that are levels
/// of one, a `[[cache_level]]`): the rule of names ([`engine::names::check_group`]), so
/// no control, invisible formatting or bidirectional character, no space, no uppercase.
pub fn check_group(group: &str) -> Result<(), Refusal> {
    match engine::names::name_rule(group) {
        Some(rule) => Err(Refusal::new("group", rule)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("perfpilot-secret-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `read_blocking` on its own thread: a read that blocks fails the test after 5 s
    /// instead of hanging it.
    fn read_within_5_s(path: &Path) -> Result<Option<String>, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let file = Some(path.to_owned());
        std::thread::spawn(move || {
            let _ = tx.send(read_blocking(&file, &None));
        });
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("reading {} blocked", path.display()))
    }

    #[tokio::test]
    async fn a_small_regular_file_gives_its_first_line() {
        let dir = temp_dir("small");
        let file = dir.join("pg.password");
        std::fs::write(&file, "s3cret\r\nsecond line\n").unwrap();
        assert_eq!(
            read(&Some(file.clone()), &None).await.unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(read_within_5_s(&file).unwrap().as_deref(), Some("s3cret"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_oversize_file_is_refused_naming_the_field_and_the_rule() {
        let dir = temp_dir("oversize");
        let file = dir.join("huge.password");
        std::fs::write(&file, vec![b'x'; 4 * 1024 * 1024]).unwrap();
        let err = read(&Some(file.clone()), &None).await.unwrap_err();
        assert_eq!(
            err,
            format!(
                "password_file: must be a regular file of at most 64 KiB, {} is 4194304 bytes",
                file.display()
            )
        );
        // One byte over the cap is over.
        std::fs::write(&file, vec![b'x'; 64 * 1024 + 1]).unwrap();
        assert!(read_within_5_s(&file).is_err());
        std::fs::write(&file, vec![b'x'; 64 * 1024]).unwrap();
        assert_eq!(read_within_5_s(&file).unwrap().unwrap().len(), 64 * 1024);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("pg.password");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(made.success(), "mkfifo {}", fifo.display());
        let err = read_within_5_s(&fifo).unwrap_err();
        assert_eq!(
            err,
            format!(
                "password_file: must be a regular file of at most 64 KiB, {} is a FIFO",
                fifo.display()
            )
        );
        let err = read(&Some(fifo.clone()), &None).await.unwrap_err();
        assert!(err.ends_with("is a FIFO"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_directory_is_refused() {
        let dir = temp_dir("directory");
        let err = read(&Some(dir.clone()), &None).await.unwrap_err();
        assert_eq!(
            err,
            format!(
                "password_file: must be a regular file of at most 64 KiB, {} is a directory",
                dir.display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_missing_file_says_so_naming_the_field() {
        let missing = PathBuf::from("/nonexistent/perfpilot/pg.password");
        let err = read(&Some(missing), &None).await.unwrap_err();
        assert!(
            err.starts_with("password_file: cannot read /nonexistent/perfpilot/pg.password: "),
            "{err}"
        );
        assert!(err.contains("No such file or directory"), "{err}");
    }

    #[tokio::test]
    async fn an_unset_variable_is_named() {
        let err = read(&None, &Some("PERFPILOT_TEST_NO_SUCH_VARIABLE".into()))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "password_env: the environment variable PERFPILOT_TEST_NO_SUCH_VARIABLE is not set"
        );
        assert_eq!(read(&None, &None).await.unwrap(), None);
    }
}
