//! `ca.pem` / `ca-key.pem` in `CA_DIR`; the key is written with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::CaError;

pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CaFiles {
    pub fn new(dir: &Path) -> Self {
        Self {
            cert: dir.join("ca.pem"),
            key: dir.join("ca-key.pem"),
        }
    }

    /// Both files, or `None` when neither exists.
    pub fn read(&self) -> Result<Option<(String, String)>, CaError> {
        match (self.cert.exists(), self.key.exists()) {
            (false, false) => Ok(None),
            (true, false) => Err(CaError::HalfPair(self.cert.clone(), self.key.clone())),
            (false, true) => Err(CaError::HalfPair(self.key.clone(), self.cert.clone())),
            (true, true) => Ok(Some((read(&self.cert)?, read(&self.key)?))),
        }
    }

    pub fn write(&self, cert_pem: &str, key_pem: &str) -> Result<(), CaError> {
        if let Some(dir) = self.cert.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        write_atomic(&self.key, key_pem.as_bytes(), 0o600)?;
        write_atomic(&self.cert, cert_pem.as_bytes(), 0o644)
    }
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Write to a temporary file with `mode`, then rename over `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let io = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
