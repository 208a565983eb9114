//! Where a GGUF file's bytes live (a read-only map of the file, or memory) and what nib asks the
//! operating system about them: locking the pages in memory, reading ahead, releasing pages no
//! longer used.

use super::{GgufError, Result};
use memmap2::Mmap;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

/// Bytes of a mapping that [`Backing::release_pages`] and [`Backing::mlock_except`] count in.
const PAGE: usize = 4096;

/// Where a file's bytes live.
pub enum Backing {
    /// A read-only private mapping of the file (the default: nothing is copied at load).
    Mmap(Mmap),
    /// Bytes owned in memory (`--no-mmap`, or files built in memory by tests and tools).
    Owned(Vec<u8>),
}

/// What a file of this type is called in an error, when it is not one a model can be read from
/// (`None`: a regular file or a block device, which can).
fn refused_kind(ft: std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_block_device() {
            return None;
        }
        if ft.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
    }
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else {
        Some("not a regular file")
    }
}

fn refuse(path: &Path, kind: &str) -> GgufError {
    GgufError::new(format!(
        "{} is {kind}, not a model file (give a regular GGUF file)",
        path.display()
    ))
}

/// Open a model file for reading: only a regular file or a block device. A FIFO would block
/// `open` until a writer came (forever, for a mistyped `-m`), a directory or a socket cannot be
/// read as one; each is refused by its type before `open`. The file is then opened with
/// `O_NONBLOCK` (so a file swapped for a FIFO between the check and the open cannot block
/// either) and its type checked again on the open descriptor (`fstat`), which is what is read.
pub fn open_model_file(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path)
        .map_err(|e| GgufError::new(format!("cannot open {}: {e}", path.display())))?;
    if let Some(kind) = refused_kind(meta.file_type()) {
        return Err(refuse(path, kind));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts
        .open(path)
        .map_err(|e| GgufError::new(format!("cannot open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| GgufError::new(format!("cannot open {}: {e}", path.display())))?;
    if let Some(kind) = refused_kind(meta.file_type()) {
        return Err(refuse(path, kind));
    }
    // O_NONBLOCK has no effect on reads of regular files and block devices.
    Ok(file)
}

impl Backing {
    /// A read-only private map of the file at `path`.
    pub fn map(path: &Path) -> Result<Backing> {
        let file = open_model_file(path)?;
        // SAFETY: the map is read-only and private. nib never writes through it; if another
        // process truncates the file while it is mapped, reads may fault, as with any mmap-based
        // loader (llama.cpp has the same contract). We accept that, as the issue of a user
        // modifying a model file under a running process.
        let mmap = unsafe { Mmap::map(&file) }
            .map_err(|e| GgufError::new(format!("cannot map {}: {e}", path.display())))?;
        Ok(Backing::Mmap(mmap))
    }

    /// The file at `path` read into memory.
    pub fn read(path: &Path) -> Result<Backing> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut open_model_file(path)?, &mut bytes)
            .map_err(|e| GgufError::new(format!("cannot read {}: {e}", path.display())))?;
        Ok(Backing::Owned(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }

    /// The bytes, writable when they are in memory (`None` when mapped).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Backing::Mmap(_) => None,
            Backing::Owned(v) => Some(v),
        }
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self, Backing::Mmap(_))
    }

    /// Drop the mapping of the whole pages inside `range` (nothing for bytes in memory).
    pub fn release_pages(&self, range: Range<usize>) {
        if let Backing::Mmap(m) = self {
            let start = range.start.div_ceil(PAGE) * PAGE;
            let end = (range.end.min(m.len()) / PAGE) * PAGE;
            if end > start {
                // SAFETY: the mapping is a read-only private map of the file, never written, so
                // dropping its pages loses nothing: a later read faults the file's bytes back
                // in. The range lies inside the mapping. An error leaves the pages mapped,
                // which is harmless.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
    }

    /// Lock the mapped pages into memory (nothing for bytes in memory).
    pub fn mlock(&self) -> Result<()> {
        match self {
            Backing::Mmap(m) => m.lock().map_err(|e| {
                GgufError::new(format!(
                    "mlock of {} bytes failed: {e} (raise `ulimit -l` or run without --mlock)",
                    m.len()
                ))
            }),
            Backing::Owned(_) => Ok(()),
        }
    }

    /// [`Backing::mlock`] of every mapped page except those wholly inside the `skip` ranges.
    #[cfg(not(unix))]
    pub fn mlock_except(&self, _skip: &[Range<usize>]) -> Result<()> {
        self.mlock()
    }

    /// [`Backing::mlock`] of every mapped page except those wholly inside the `skip` ranges.
    #[cfg(unix)]
    pub fn mlock_except(&self, skip: &[Range<usize>]) -> Result<()> {
        let Backing::Mmap(m) = self else {
            return Ok(());
        };
        // The pages released: each skipped range's whole pages, in order.
        let mut holes: Vec<(usize, usize)> = skip
            .iter()
            .map(|r| {
                (
                    r.start.div_ceil(PAGE) * PAGE,
                    r.end.min(m.len()) / PAGE * PAGE,
                )
            })
            .filter(|(a, b)| b > a)
            .collect();
        holes.sort_unstable();
        let mut at = 0;
        let lock = |from: usize, to: usize| -> Result<()> {
            if to <= from {
                return Ok(());
            }
            // SAFETY: `from..to` lies inside the mapping, which lives as long as `self`;
            // mlock only pins its pages (munmap unlocks them).
            let rc = unsafe { libc::mlock(m.as_ptr().add(from).cast(), to - from) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                return Err(GgufError::new(format!(
                    "mlock of {} bytes failed: {e} (raise `ulimit -l` or run without --mlock)",
                    to - from
                )));
            }
            Ok(())
        };
        for (a, b) in holes {
            lock(at, a.max(at))?;
            at = at.max(b);
        }
        lock(at, m.len())
    }

    /// Ask the kernel to read the mapped file ahead (a hint; errors are ignored).
    pub fn advise_willneed(&self) {
        if let Backing::Mmap(m) = self {
            let _ = m.advise(memmap2::Advice::WillNeed);
        }
    }
}
