//! A writer of cpio "newc" archives, the format the kernel unpacks as an initramfs.

use super::with_context;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// Writes a cpio "newc" archive (what the kernel unpacks as an initramfs). Written here rather than
/// with cpio(1) so that device nodes and root ownership need no privileges.
pub(super) struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    pos: u64,
}

impl<W: Write> CpioWriter<W> {
    pub(super) fn new(out: W) -> Self {
        CpioWriter {
            out,
            ino: 1,
            pos: 0,
        }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let n = (4 - (self.pos % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| io::Error::other("file too large for cpio"))?;
        let ino = self.ino;
        self.ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            size,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut h = String::from("070701");
        for f in fields {
            write!(h, "{f:08X}").unwrap();
        }
        self.put(h.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad4()
    }

    pub(super) fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.header(name, 0o040000 | perm, 0, (0, 0))
    }

    pub(super) fn char_dev(
        &mut self,
        name: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.header(name, 0o020000 | perm, 0, (major, minor))
    }

    pub(super) fn file_bytes(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.header(name, 0o100000 | perm, data.len() as u64, (0, 0))?;
        self.put(data)?;
        self.pad4()
    }

    pub(super) fn file_from_path(&mut self, name: &str, perm: u32, path: &Path) -> io::Result<()> {
        let mut f = File::open(path).map_err(|e| with_context(e, path.display().to_string()))?;
        let len = f.metadata()?.len();
        self.header(name, 0o100000 | perm, len, (0, 0))?;
        let copied = io::copy(&mut (&mut f).take(len), &mut self.out)?;
        if copied != len {
            return Err(io::Error::other(format!("{} shrank", path.display())));
        }
        self.pos += len;
        self.pad4()
    }

    pub(super) fn finish(mut self) -> io::Result<()> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_is_newc() {
        let mut v = Vec::new();
        let mut w = CpioWriter::new(&mut v);
        w.file_bytes("init", 0o755, b"hi").unwrap();
        w.finish().unwrap();
        assert!(v.starts_with(b"070701"));
        assert_eq!(v.len() % 4, 0);
        // 110-byte header + "init\0" padded to 116, + 2 data bytes padded to 4.
        assert_eq!(&v[116..118], b"hi");
        assert!(v.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
