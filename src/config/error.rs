//! A config problem as the user sees it: one line naming the file, the field and what
//! is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A config problem: which file, which field, what is wrong.
#[derive(Debug)]
pub(crate) struct ConfigError {
    path: PathBuf,
    pub(super) field: Option<String>,
    problem: String,
}

impl ConfigError {
    /// A problem with one field.
    pub(crate) fn field(path: &Path, field: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            field: Some(field.to_string()),
            problem: problem.into(),
        }
    }

    /// A problem with the whole file.
    pub(crate) fn whole(path: &Path, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            field: None,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "config {}: field \"{}\": {}",
                self.path.display(),
                field,
                self.problem
            ),
            None => write!(f, "config {}: {}", self.path.display(), self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}
