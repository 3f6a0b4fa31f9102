//! One period's output file: naming, open for append, torn-tail repair, all-or-nothing
//! writes, fsync and close; and whether the path still leads to it (the file may be
//! deleted with its directory, or moved away by a sync tool, while it is open).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// `<dir>/<prefix>_<period_start>.jsonl`.
pub(crate) fn path_for(dir: &Path, prefix: &str, period: u64) -> PathBuf {
    dir.join(format!("{prefix}_{period}.jsonl"))
}

/// An open period file. Its length on disk always ends at a line boundary: a failed
/// write is cut back before the error is returned.
pub(crate) struct HourFile {
    file: File,
    path: PathBuf,
    /// Bytes known to be in the file, all complete lines.
    len: u64,
    /// Device and inode of the open file, to tell it from whatever the path leads to.
    id: (u64, u64),
    /// `len` when the path last led to this file: what was written after it may be in
    /// a file that was deleted meanwhile.
    checked_len: u64,
}

/// What the path of an open file leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathState {
    /// The open file.
    Ours,
    /// Another file, or nothing, and the open file still has a name somewhere (moved).
    Moved,
    /// Another file, or nothing, and the open file has no name left (deleted).
    Deleted,
}

impl HourFile {
    /// Opens (or creates) `path` for appending. A partial last line, left by a crash,
    /// is cut off so that every line of the file parses.
    pub(crate) fn open(path: PathBuf) -> io::Result<HourFile> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let meta = file.metadata()?;
        let id = (meta.dev(), meta.ino());
        let mut len = meta.len();
        if len > 0 {
            let good = last_line_end(&file, len)?;
            if good != len {
                log::warn!(
                    "{}: removed a partial last line of {} bytes (left by an earlier crash)",
                    path.display(),
                    len - good
                );
                file.set_len(good)?;
                len = good;
            }
        }
        if !existed {
            // Make the new directory entry durable along with the data.
            if let Some(dir) = path.parent() {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        Ok(HourFile {
            file,
            path,
            len,
            id,
            checked_len: len,
        })
    }

    /// Whether the path still leads to this file: one `stat`, and one `fstat` only when
    /// it does not. Called about once a second, never per write.
    pub(crate) fn check_path(&mut self) -> PathState {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.id => {
                self.checked_len = self.len;
                PathState::Ours
            }
            _ => match self.file.metadata() {
                Ok(m) if m.nlink() == 0 => PathState::Deleted,
                _ => PathState::Moved,
            },
        }
    }

    /// Copies the lines written since the path last led here into `dst`: after a
    /// deletion they exist nowhere else. Returns the bytes copied. Reads in chunks cut
    /// at line ends, so a failure leaves `dst` with whole lines only.
    pub(crate) fn copy_unchecked_tail(&self, dst: &mut HourFile) -> io::Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = self.checked_len;
        while at < self.len {
            let n = ((self.len - at) as usize).min(buf.len());
            self.file.read_exact_at(&mut buf[..n], at)?;
            match buf[..n].iter().rposition(|&b| b == b'\n') {
                Some(i) => {
                    dst.append(&buf[..=i])?;
                    at += i as u64 + 1;
                }
                // A line longer than the buffer (up to max_message_bytes): grow it.
                None => buf.resize(buf.len() * 2, 0),
            }
        }
        Ok(self.len - self.checked_len)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends whole lines. On error nothing of `bytes` stays in the file.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // A short write before the error (disk full) would leave a torn line.
                if let Err(trunc) = self.file.set_len(self.len) {
                    log::error!(
                        "{}: cannot cut back a failed write: {trunc}",
                        self.path.display()
                    );
                }
                Err(e)
            }
        }
    }

    /// Flushes to stable storage and closes.
    pub(crate) fn close(self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Offset just past the last `\n` in the first `len` bytes (0 if there is none).
fn last_line_end(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_a_torn_tail_and_appends() {
        let dir = std::env::temp_dir().join(format!("wsrec-hf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = path_for(&dir, "t", 3600);
        std::fs::write(&p, b"{\"a\":1}\n{\"b\":").unwrap();
        let mut f = HourFile::open(p.clone()).unwrap();
        f.append(b"{\"c\":3}\n").unwrap();
        f.close().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}\n{\"c\":3}\n");
        std::fs::write(&p, b"no newline at all").unwrap();
        HourFile::open(p.clone()).unwrap().close().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tells_a_moved_file_from_a_deleted_one_and_saves_the_tail() {
        let dir = std::env::temp_dir().join(format!("wsrec-hf2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = path_for(&dir, "t", 0);
        let mut f = HourFile::open(p.clone()).unwrap();
        f.append(b"1\n").unwrap();
        assert_eq!(f.check_path(), PathState::Ours);
        f.append(b"2\n").unwrap();
        std::fs::rename(&p, dir.join("moved")).unwrap();
        assert_eq!(f.check_path(), PathState::Moved);
        std::fs::remove_file(dir.join("moved")).unwrap();
        assert_eq!(f.check_path(), PathState::Deleted);
        let long = format!("{}\n", "x".repeat(200_000));
        f.append(long.as_bytes()).unwrap();
        let mut g = HourFile::open(p.clone()).unwrap();
        assert_eq!(g.check_path(), PathState::Ours);
        let copied = f.copy_unchecked_tail(&mut g).unwrap();
        assert_eq!(copied, 2 + long.len() as u64);
        g.close().unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            [b"2\n", long.as_bytes()].concat()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
