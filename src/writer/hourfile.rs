//! One period's output file: naming, open for append, torn-tail repair, all-or-nothing
//! writes, fsync and close.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
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
        let mut len = file.metadata()?.len();
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
        Ok(HourFile { file, path, len })
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
}
