//! The ivshmem PCI device as a guest sees it (BARs, registers), and the `Guest` methods poking it.

use super::guest::Guest;
use std::io;
use std::time::Duration;

/// PCI ids of QEMU's ivshmem devices (Red Hat / Qumranet vendor id).
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
pub const IVSHMEM_DEVICE: u16 = 0x1110;

/// BAR0 register offsets of ivshmem-doorbell (32-bit accesses only).
pub const REG_INTR_MASK: u64 = 0x00;
pub const REG_INTR_STATUS: u64 = 0x04;
pub const REG_IV_POSITION: u64 = 0x08;
pub const REG_DOORBELL: u64 = 0x0C;

/// The Doorbell register value that rings `vector` of `peer`.
pub fn doorbell_value(peer: u16, vector: u8) -> u32 {
    (u32::from(peer) << 16) | u32::from(vector)
}

/// One PCI BAR as the guest's sysfs `resource` file describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciBar {
    /// Guest-physical start address.
    pub start: u64,
    /// Guest-physical last address (inclusive).
    pub end: u64,
    /// Linux `IORESOURCE_*` flags.
    pub flags: u64,
}

impl PciBar {
    pub fn len(&self) -> u64 {
        if self.end < self.start {
            0
        } else {
            self.end - self.start + 1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An ivshmem device in a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvshmemDevice {
    /// PCI address, e.g. `0000:00:02.0`.
    pub bdf: String,
    /// Registers (256 bytes).
    pub bar0: PciBar,
    /// MSI-X table (ivshmem-doorbell only; empty for ivshmem-plain).
    pub bar1: PciBar,
    /// The shared memory.
    pub bar2: PciBar,
}

impl IvshmemDevice {
    /// Parses `BDF start end flags start end flags start end flags`.
    fn parse(line: &str) -> Option<IvshmemDevice> {
        let mut it = line.split_whitespace();
        let bdf = it.next()?.to_string();
        let mut num = || -> Option<u64> {
            let s = it.next()?;
            u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
        };
        let mut bar = || -> Option<PciBar> {
            Some(PciBar {
                start: num()?,
                end: num()?,
                flags: num()?,
            })
        };
        let (bar0, bar1, bar2) = (bar()?, bar()?, bar()?);
        if bar0.is_empty() || bar2.is_empty() {
            return None;
        }
        Some(IvshmemDevice {
            bdf,
            bar0,
            bar1,
            bar2,
        })
    }

    /// Guest-physical address of a BAR0 register.
    pub fn reg(&self, offset: u64) -> u64 {
        self.bar0.start + offset
    }

    /// Guest-physical address of byte `offset` of the shared memory.
    pub fn shm(&self, offset: u64) -> u64 {
        assert!(offset < self.bar2.len(), "offset {offset:#x} beyond BAR2");
        self.bar2.start + offset
    }

    /// Size of the shared memory.
    pub fn shm_len(&self) -> u64 {
        self.bar2.len()
    }
}

/// A guest's ivshmem devices and 32-bit physical memory accesses (busybox `devmem`).
impl Guest {
    /// The ivshmem devices of this guest, in PCI address order (which for devices added by
    /// [`Guest::boot`] is the order of [`GuestConfig::ivshmem`](super::GuestConfig::ivshmem)).
    pub fn ivshmem_devices(&self) -> io::Result<Vec<IvshmemDevice>> {
        let out = self.run_ok(
            r#"for d in /sys/bus/pci/devices/*; do
                 [ "$(cat $d/vendor)" = 0x1af4 ] && [ "$(cat $d/device)" = 0x1110 ] || continue
                 echo "DEV ${d##*/} $(head -n 3 $d/resource | tr '\n' ' ')"
               done"#,
            Duration::from_secs(30),
        )?;
        let mut devs = Vec::new();
        for line in out.lines() {
            let Some(rest) = line.strip_prefix("DEV ") else {
                continue;
            };
            let dev = IvshmemDevice::parse(rest).ok_or_else(|| {
                self.error(
                    io::ErrorKind::InvalidData,
                    format!("cannot parse ivshmem device line {line:?}"),
                )
            })?;
            devs.push(dev);
        }
        devs.sort_by(|a, b| a.bdf.cmp(&b.bdf));
        Ok(devs)
    }

    /// The only ivshmem device; an error if there is not exactly one.
    pub fn ivshmem_device(&self) -> io::Result<IvshmemDevice> {
        let mut devs = self.ivshmem_devices()?;
        if devs.len() != 1 {
            return Err(self.error(
                io::ErrorKind::NotFound,
                format!("expected one ivshmem device, found {}", devs.len()),
            ));
        }
        Ok(devs.remove(0))
    }

    /// A 32-bit read of guest-physical `addr` with busybox devmem.
    pub fn read32(&self, addr: u64) -> io::Result<u32> {
        let out = self.run_ok(&format!("devmem {addr:#x} 32"), Duration::from_secs(30))?;
        let t = out.trim();
        u32::from_str_radix(t.trim_start_matches("0x").trim_start_matches("0X"), 16).map_err(|_| {
            self.error(
                io::ErrorKind::InvalidData,
                format!("devmem {addr:#x} printed {t:?}"),
            )
        })
    }

    /// A 32-bit write of guest-physical `addr` with busybox devmem.
    pub fn write32(&self, addr: u64, value: u32) -> io::Result<()> {
        self.run_ok(
            &format!("devmem {addr:#x} 32 {value:#x}"),
            Duration::from_secs(30),
        )
        .map(|_| ())
    }

    /// The device's IVPosition register: this guest's peer id on its daemon.
    pub fn iv_position(&self, dev: &IvshmemDevice) -> io::Result<u16> {
        let v = self.read32(dev.reg(REG_IV_POSITION))?;
        u16::try_from(v).map_err(|_| {
            self.error(
                io::ErrorKind::InvalidData,
                format!("IVPosition reads {v:#x}"),
            )
        })
    }

    /// Rings `vector` of `peer` through the device's Doorbell register.
    pub fn ring_doorbell(&self, dev: &IvshmemDevice, peer: u16, vector: u8) -> io::Result<()> {
        self.write32(dev.reg(REG_DOORBELL), doorbell_value(peer, vector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_resource_lines() {
        let d = IvshmemDevice::parse(
            "0000:00:02.0 0x00000000febf1000 0x00000000febf10ff 0x0000000000040200 \
             0x00000000febf0000 0x00000000febf0fff 0x0000000000040200 \
             0x00000000fe800000 0x00000000fe8fffff 0x000000000014220c",
        )
        .unwrap();
        assert_eq!(d.bdf, "0000:00:02.0");
        assert_eq!(d.reg(REG_DOORBELL), 0xfebf100c);
        assert_eq!(d.bar0.len(), 256);
        assert_eq!(d.shm_len(), 1 << 20);
        assert_eq!(d.shm(0x80000), 0xfe880000);
        assert_eq!(doorbell_value(3, 1), 0x0003_0001);
    }
}
