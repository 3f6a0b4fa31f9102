//! Which hours are closed on disk: an hour whose file was compressed (`.jsonl.gz`,
//! `.jsonl.zst`) must never be written again, and the newest hour in output_dir tells
//! whether the clock is behind the files (a Raspberry Pi without a real-time clock,
//! started before NTP set the time).

use std::path::Path;

/// Whether `path` (a `.jsonl` hour file) has a compressed twin: its hour is closed.
pub(crate) fn compressed(path: &Path) -> bool {
    ["gz", "zst"].iter().any(|ext| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{ext}"));
        Path::new(&p).exists()
    })
}

/// The newest hour that has a file of ours in output_dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Newest {
    /// Its start, Unix seconds.
    pub(crate) period: u64,
    /// Whether a file of that hour is compressed (so the hour is closed).
    pub(crate) compressed: bool,
}

/// Scans `dir` for `<name>_<period>.jsonl[.gz|.zst]` with `name` one of `names`.
/// One `read_dir`, at start and at each new hour, not per write.
pub(crate) fn newest(dir: &Path, names: &[String]) -> Option<Newest> {
    let mut best: Option<Newest> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let (base, packed) = match file.strip_suffix(".jsonl") {
            Some(b) => (b, false),
            None => match file
                .strip_suffix(".jsonl.gz")
                .or_else(|| file.strip_suffix(".jsonl.zst"))
            {
                Some(b) => (b, true),
                None => continue,
            },
        };
        let Some((name, period)) = base.rsplit_once('_') else {
            continue;
        };
        let Ok(period) = period.parse::<u64>() else {
            continue;
        };
        if !names.iter().any(|n| n == name) {
            continue;
        }
        best = match best {
            Some(b) if b.period > period => Some(b),
            Some(b) if b.period == period => Some(Newest {
                period,
                compressed: b.compressed || packed,
            }),
            _ => Some(Newest {
                period,
                compressed: packed,
            }),
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_newest_hour_and_whether_it_is_compressed() {
        let dir = std::env::temp_dir().join(format!("wsrec-closed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = ["t".to_string(), "_control".to_string()];
        assert_eq!(newest(&dir, &names), None);
        for f in [
            "t_3600.jsonl",
            "t_7200.jsonl.gz",
            "other_99999.jsonl",
            "t_x.jsonl",
            "_control_7200.jsonl",
        ] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        assert_eq!(
            newest(&dir, &names),
            Some(Newest {
                period: 7200,
                compressed: true
            })
        );
        assert!(compressed(&dir.join("t_7200.jsonl")));
        assert!(!compressed(&dir.join("t_3600.jsonl")));
        std::fs::write(dir.join("_control_10800.jsonl"), b"").unwrap();
        assert_eq!(
            newest(&dir, &names),
            Some(Newest {
                period: 10800,
                compressed: false
            })
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
