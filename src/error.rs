//! Fatal errors and their exit codes.

use std::fmt;

use crate::config::ConfigError;
use crate::exit_codes::Exit;

/// An error that ends the process with one line on stderr.
#[derive(Debug)]
pub(crate) enum Fatal {
    /// Bad flags, a bad config, or a resource the config names that cannot be used: exit 2.
    Usage(String),
    /// A config file problem: exit 2.
    Config(ConfigError),
    /// Anything else: exit 1.
    Other(String),
    /// A specific exit code (the status probe).
    Code(u8, String),
}

impl Fatal {
    /// The process exit code.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Fatal::Usage(_) | Fatal::Config(_) => Exit::Usage.into(),
            Fatal::Other(_) => Exit::Failure.into(),
            Fatal::Code(c, _) => *c,
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fatal::Usage(m) | Fatal::Other(m) | Fatal::Code(_, m) => f.write_str(m),
            Fatal::Config(e) => e.fmt(f),
        }
    }
}

impl From<ConfigError> for Fatal {
    fn from(e: ConfigError) -> Fatal {
        Fatal::Config(e)
    }
}
