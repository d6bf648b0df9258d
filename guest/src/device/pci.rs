//! Finding this VM's ivshmem devices in sysfs: addresses, drivers, IOMMU groups and BAR
//! resources.

use super::DeviceError;
use std::fs;
use std::path::{Path, PathBuf};

/// PCI ids of QEMU's ivshmem devices (Red Hat / Qumranet vendor id).
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
pub const IVSHMEM_DEVICE: u16 = 0x1110;

/// Where Linux lists PCI devices.
pub const SYSFS_PCI: &str = "/sys/bus/pci/devices";

/// An ivshmem device as sysfs lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Full PCI address, e.g. `0000:00:02.0`.
    pub bdf: String,
    /// Its sysfs directory.
    pub path: PathBuf,
}

impl PciDevice {
    /// A VFIO failure on this device: `what` was being done, `e` went wrong.
    pub(super) fn vfio_err(&self, what: &str, e: impl std::fmt::Display) -> DeviceError {
        DeviceError::Vfio(format!("{}: {what}: {e}", self.bdf))
    }

    /// The device at `bdf` (`0000:00:02.0`, or `00:02.0` for domain 0), which must exist.
    pub fn at(bdf: &str) -> Result<PciDevice, DeviceError> {
        Self::at_in(Path::new(SYSFS_PCI), bdf)
    }

    fn at_in(root: &Path, bdf: &str) -> Result<PciDevice, DeviceError> {
        let bdf = normalize_bdf(bdf);
        let path = root.join(&bdf);
        if !path.exists() {
            return Err(DeviceError::Pci(format!(
                "no PCI device {bdf} ({} does not exist)",
                path.display()
            )));
        }
        Ok(PciDevice { bdf, path })
    }

    /// Name of the driver bound to it, if any (`vfio-pci`, …).
    pub fn driver(&self) -> Option<String> {
        let link = fs::read_link(self.path.join("driver")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// Its IOMMU group, if the kernel has an IOMMU.
    pub fn iommu_group(&self) -> Option<u32> {
        let link = fs::read_link(self.path.join("iommu_group")).ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// True if it is an ivshmem device (1af4:1110).
    pub fn is_ivshmem(&self) -> bool {
        read_hex(&self.path.join("vendor")) == Some(u64::from(IVSHMEM_VENDOR))
            && read_hex(&self.path.join("device")) == Some(u64::from(IVSHMEM_DEVICE))
    }

    /// `(start, length)` of BAR `n` from the `resource` file; length 0 if unassigned.
    pub fn bar(&self, n: usize) -> Result<(u64, u64), DeviceError> {
        let text = fs::read_to_string(self.path.join("resource"))
            .map_err(|e| DeviceError::Pci(format!("{}: reading resource: {e}", self.bdf)))?;
        parse_resource_line(text.lines().nth(n).unwrap_or("")).ok_or_else(|| {
            DeviceError::Pci(format!("{}: cannot parse BAR{n} in resource", self.bdf))
        })
    }
}

/// `0000:00:02.0` from `00:02.0` (domain 0 implied); other forms are kept as given.
pub fn normalize_bdf(bdf: &str) -> String {
    let bdf = bdf.trim();
    if bdf.matches(':').count() == 1 {
        format!("0000:{bdf}")
    } else {
        bdf.to_string()
    }
}

fn read_hex(path: &Path) -> Option<u64> {
    let s = fs::read_to_string(path).ok()?;
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// `start end flags` in hex → `(start, length)`.
fn parse_resource_line(line: &str) -> Option<(u64, u64)> {
    let mut it = line
        .split_whitespace()
        .map(|s| u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok());
    let (start, end) = (it.next()??, it.next()??);
    Some((start, if end > start { end - start + 1 } else { 0 }))
}

/// Every ivshmem device of this machine, in PCI address order.
pub fn ivshmem_devices() -> Vec<PciDevice> {
    ivshmem_devices_in(Path::new(SYSFS_PCI))
}

fn ivshmem_devices_in(root: &Path) -> Vec<PciDevice> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut devs: Vec<PciDevice> = entries
        .flatten()
        .map(|e| PciDevice {
            bdf: e.file_name().to_string_lossy().into_owned(),
            path: e.path(),
        })
        .filter(PciDevice::is_ivshmem)
        .collect();
    devs.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    devs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ivshmem::doorbell_value;

    #[test]
    fn bdf_and_resource_parsing() {
        assert_eq!(normalize_bdf("00:02.0"), "0000:00:02.0");
        assert_eq!(normalize_bdf(" 0000:00:03.0\n"), "0000:00:03.0");
        assert_eq!(
            parse_resource_line("0x00000000febf1000 0x00000000febf10ff 0x0000000000040200"),
            Some((0xfebf1000, 256))
        );
        assert_eq!(
            parse_resource_line("0x0000000000000000 0x0000000000000000 0x0000000000000000"),
            Some((0, 0))
        );
        assert_eq!(parse_resource_line(""), None);
        assert_eq!(doorbell_value(3, 1), 0x0003_0001);
        assert_eq!(doorbell_value(0xffff, 0x1ff), 0xffff_00ff);
    }

    #[test]
    fn scans_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("snoo-fake-sysfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (bdf, vendor, device) in [
            ("0000:00:03.0", "0x1af4", "0x1110"),
            ("0000:00:01.0", "0x8086", "0x29c0"),
            ("0000:00:02.0", "0x1af4", "0x1110\n"),
        ] {
            let d = root.join(bdf);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("vendor"), vendor).unwrap();
            fs::write(d.join("device"), device).unwrap();
        }
        let found: Vec<String> = ivshmem_devices_in(&root)
            .into_iter()
            .map(|d| d.bdf)
            .collect();
        assert_eq!(found, ["0000:00:02.0", "0000:00:03.0"]);
        assert!(PciDevice::at_in(&root, "00:02.0").is_ok());
        assert!(PciDevice::at_in(&root, "00:09.0").is_err());
        assert_eq!(PciDevice::at_in(&root, "00:02.0").unwrap().driver(), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
