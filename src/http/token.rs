//! The bearer token of the API's TCP listener: random, made once, kept mode 0600 in the data
//! dir (`http.token`), so a client on the machine that can read the daemon's files can use
//! it, and nobody else. The Unix socket needs none: its peers are checked by the kernel.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Random bytes in a token (written as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read or make the API token {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("will not use the API token {path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },
}

#[derive(Clone)]
pub struct Token(String);

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("http.token")
}

impl Token {
    /// The token in `data_dir`, made if there is none. One that others could read, or that
    /// is not ours, is refused rather than trusted or replaced.
    pub fn load_or_create(data_dir: &Path) -> Result<Token, TokenError> {
        let path = path(data_dir);
        let io_error = |source| TokenError::Io {
            path: path.clone(),
            source,
        };
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                check_private(&path, &meta)?;
                let mut text = String::new();
                open_nofollow(&path)
                    .and_then(|mut file| file.read_to_string(&mut text))
                    .map_err(io_error)?;
                let token = text.trim();
                if token.len() != 2 * TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(TokenError::Unsafe {
                        path,
                        reason: format!(
                            "it is not {} hex digits (remove it to have a new one made)",
                            2 * TOKEN_BYTES
                        ),
                    });
                }
                Ok(Token(token.to_string()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let token = Token(random_hex().map_err(io_error)?);
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(io_error)?;
                file.write_all(format!("{}\n", token.0).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io_error)?;
                Ok(token)
            }
            Err(e) => Err(io_error(e)),
        }
    }

    /// The token itself, for the observer's address (which carries it in its fragment).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header carries this token (`Bearer <token>`), compared in
    /// time that does not depend on where a guess goes wrong.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(given) = authorization.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let expected = self.0.as_bytes();
        given.len() == expected.len()
            && given
                .iter()
                .zip(expected)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), TokenError> {
    let unsafe_because = |reason: String| TokenError::Unsafe {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.file_type().is_file() {
        return Err(unsafe_because("it is not a regular file".to_string()));
    }
    // SAFETY: geteuid has no preconditions.
    let us = unsafe { libc::geteuid() };
    if meta.uid() != us {
        return Err(unsafe_because(format!(
            "it belongs to uid {}, not to us ({us})",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_because(format!(
            "its mode is {mode:04o}: others may read it (chmod 600 it)"
        )));
    }
    Ok(())
}

fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let made = Token::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = Token::load_or_create(dir.path()).unwrap();
        assert_eq!(made.0, again.0);
        assert_eq!(made.0.len(), 64);
    }

    #[test]
    fn a_token_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Token::load_or_create(dir.path()).unwrap();
        fs::set_permissions(path(dir.path()), fs::Permissions::from_mode(0o644)).unwrap();
        let refused = Token::load_or_create(dir.path()).err().unwrap();
        assert!(
            refused.to_string().contains("others may read it"),
            "{refused}"
        );
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = Token("ab".repeat(32));
        let right = format!("Bearer {}", "ab".repeat(32));
        assert!(token.admits(Some(right.as_bytes())));
        assert!(!token.admits(None));
        assert!(!token.admits(Some("ab".repeat(32).as_bytes())), "no scheme");
        assert!(!token.admits(Some(format!("Bearer {}", "ab".repeat(31)).as_bytes())));
        assert!(!token.admits(Some(format!("Bearer {}ac", "ab".repeat(31)).as_bytes())));
    }
}
