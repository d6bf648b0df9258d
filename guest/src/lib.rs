//! SNOO_MPI: MPI-like messaging between virtual machines through hypervisor shared memory.
//!
//! - [`device`]: how this process reaches its pool: the daemon's socket (host processes standing in
//!   for VMs), and later the ivshmem PCI device inside a VM. The engine sees only the [`device::Device`]
//!   trait.

pub mod device;
