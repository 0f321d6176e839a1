//! Reading a file a user named (a password file, a CA, a `file_sd` list) without blocking
//! the async runtime and without reading an unbounded amount.
//!
//! Only a regular file is read, and that is checked before it is opened: opening a FIFO
//! waits for a writer (for ever, if none comes) and a device can be endless. The open
//! itself does not block either (`O_NONBLOCK`, in case the file was swapped between the
//! check and the open), at most the cap plus one byte is read, and the async entry points
//! run all of it on the blocking pool with a time limit, so a hung filesystem delays only
//! the caller. Refusals name the field and the rule: `password_file: must be a regular
//! file of at most 64 KiB, /x is 4194304 bytes`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::Refusal;

/// Largest password or token file (`password_file`, `bearer_token_file`): 64 KiB.
pub const SECRET_CAP: u64 = 64 * 1024;
/// Largest CA file (`ca_file` of HTTPS checks, `tls_ca_file` of caches): 64 KiB.
pub const CA_CAP: u64 = 64 * 1024;
/// Largest `file_sd` file: 1 MiB (a pool's 1,000 targets in JSON take about 30 KiB).
pub const FILE_SD_CAP: u64 = 1024 * 1024;
/// Longest the async entry points wait for a read before answering without it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A cap in words: `64 KiB`, `1 MiB`.
pub fn shown_cap(cap: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if cap >= MIB && cap.is_multiple_of(MIB) {
        format!("{} MiB", cap / MIB)
    } else if cap >= 1024 && cap.is_multiple_of(1024) {
        format!("{} KiB", cap / 1024)
    } else {
        format!("{cap} bytes")
    }
}

/// What a file that is not a regular one is, in words.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Opens for reading without waiting: a FIFO swapped in after the check opens at once
/// (and is refused by the check of the opened file) instead of waiting for a writer.
/// `O_NONBLOCK` changes nothing for a regular file's reads.
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        )
    ))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK on these Linux targets (no libc dependency for one constant).
        options.custom_flags(0o4000);
    }
    options.open(path)
}

/// Reads the regular file `path` whole, refusing anything else and anything larger than
/// `cap` bytes; the refusal is on `field`, the setting that names the file. Blocking:
/// call it on the blocking pool (or through [`read`]).
pub fn read_blocking(field: &str, path: &Path, cap: u64) -> Result<Vec<u8>, Refusal> {
    let refused = |why: String| Refusal::new(field, why);
    let rule = || format!("must be a regular file of at most {}", shown_cap(cap));
    let cannot = |err: std::io::Error| refused(format!("cannot read {}: {err}", path.display()));
    // Before any open: opening a FIFO blocks until a writer appears.
    let metadata = std::fs::metadata(path).map_err(cannot)?;
    if !metadata.is_file() {
        return Err(refused(format!(
            "{}, {} is {}",
            rule(),
            path.display(),
            kind_of(metadata.file_type())
        )));
    }
    if metadata.len() > cap {
        return Err(refused(format!(
            "{}, {} is {} bytes",
            rule(),
            path.display(),
            metadata.len()
        )));
    }
    let file = open_nonblocking(path).map_err(cannot)?;
    // The path may name something else now than when it was checked.
    let opened = file.metadata().map_err(cannot)?;
    if !opened.is_file() {
        return Err(refused(format!(
            "{}, {} is {}",
            rule(),
            path.display(),
            kind_of(opened.file_type())
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(opened.len().min(cap)).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > cap {
        return Err(refused(format!(
            "{}, {} is larger (it grew while it was read)",
            rule(),
            path.display()
        )));
    }
    Ok(bytes)
}

/// [`read_blocking`] on the blocking pool: the runtime never waits on the file, and the
/// caller is answered within [`READ_TIMEOUT`] whatever the filesystem does (a read that
/// took too long is refused on `field` too).
pub async fn read(field: &str, path: &Path, cap: u64) -> Result<Vec<u8>, Refusal> {
    let shown = path.display().to_string();
    let (owned, path) = (field.to_owned(), path.to_owned());
    on_blocking_pool(move || read_blocking(&owned, &path, cap))
        .await
        .map_err(|why| Refusal::new(field, format!("{shown}: {why}")))?
}

/// Runs blocking file work on the blocking pool and waits for it at most
/// [`READ_TIMEOUT`]; `what` starts the message of a read that took too long (the field
/// first, so the refusal still names it).
pub async fn off_runtime<T, F>(what: &str, work: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    on_blocking_pool(work)
        .await
        .map_err(|why| format!("{what}: {why}"))?
}

/// `work` on the blocking pool, waited for at most [`READ_TIMEOUT`]: its own result, or
/// why there is none (the read failed, the filesystem did not answer).
async fn on_blocking_pool<T, F>(work: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::time::timeout(READ_TIMEOUT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(err)) => Err(format!("the read failed: {err}")),
        Err(_) => Err(format!(
            "no answer from the filesystem within {} s",
            READ_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("perfpilot-files-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn caps_in_words() {
        assert_eq!(shown_cap(SECRET_CAP), "64 KiB");
        assert_eq!(shown_cap(FILE_SD_CAP), "1 MiB");
        assert_eq!(shown_cap(1000), "1000 bytes");
    }

    #[test]
    fn a_regular_file_within_the_cap_is_read_and_a_larger_one_refused() {
        let dir = temp_dir("cap");
        let small = dir.join("small");
        std::fs::write(&small, b"0123456789").unwrap();
        assert_eq!(read_blocking("ca_file", &small, 10).unwrap(), b"0123456789");
        let err = read_blocking("ca_file", &small, 9).unwrap_err();
        assert_eq!(err.field, "ca_file");
        assert_eq!(
            err.to_string(),
            format!(
                "ca_file: must be a regular file of at most 9 bytes, {} is 10 bytes",
                small.display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_device_is_refused_before_it_is_read() {
        // /dev/zero never ends: read, it would fill memory up to the cap and beyond.
        let err = read_blocking("file_sd", Path::new("/dev/zero"), FILE_SD_CAP).unwrap_err();
        assert_eq!(
            err.to_string(),
            "file_sd: must be a regular file of at most 1 MiB, /dev/zero is a character device"
        );
    }

    #[tokio::test]
    async fn the_async_read_runs_off_the_runtime_and_names_the_field() {
        let dir = temp_dir("async");
        let file = dir.join("ca.pem");
        std::fs::write(&file, b"pem").unwrap();
        assert_eq!(read("ca_file", &file, CA_CAP).await.unwrap(), b"pem");
        let err = read("ca_file", &dir, CA_CAP).await.unwrap_err().to_string();
        assert!(
            err.starts_with("ca_file: must be a regular file of at most 64 KiB, "),
            "{err}"
        );
        assert!(err.ends_with(" is a directory"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
