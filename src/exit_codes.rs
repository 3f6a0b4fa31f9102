//! Every exit status of the process, in one place (documented in
//! docs/operations.md and by `--help`).

/// An exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// Done: a recording stopped cleanly, a tool or `--status` (healthy) succeeded.
    Success = 0,
    /// A failure, or no instance answers `--status`.
    Failure = 1,
    /// Bad flags, a bad config, or a resource the config names that cannot be used.
    Usage = 2,
    /// `--status`: an instance answers but is not healthy.
    Unhealthy = 3,
    /// A recording ended with lines the disk did not take before the shutdown deadline.
    LostAtShutdown = 4,
}

impl From<Exit> for u8 {
    fn from(e: Exit) -> u8 {
        e as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented numbers: scripts and service managers depend on them.
    #[test]
    fn codes_are_stable() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::Unhealthy,
            Exit::LostAtShutdown,
        ]
        .into_iter()
        .map(u8::from)
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }
}
