//! The collective test programs of tests/mpi/collectives (every collective, blocking and not,
//! against reference results each program computes itself), each built three ways and run at 1 to
//! 5 ranks under real MPICH and under SNOO with the same checked output; also under
//! AddressSanitizer and valgrind.

use snoo_tests::mpi_programs::{build, every_program_and_size, same_under_both, Build};

const PROGRAMS: [&str; 6] = [
    "collectives/gather_scatter",
    "collectives/vector",
    "collectives/scan_noncomm",
    "collectives/ops",
    "collectives/nonblocking",
    "collectives/interleave",
];

#[test]
fn built_by_debian_mpicc_same_under_mpich_and_snoo() {
    every_program_and_size(&PROGRAMS, 1..=5, Build::Mpicc);
}

#[test]
fn built_by_mpicc_abi_same_under_mpich_and_snoo() {
    every_program_and_size(&PROGRAMS, 1..=5, Build::MpiccAbi);
}

#[test]
fn built_by_snoo_mpicc_same_under_mpich_and_snoo() {
    every_program_and_size(&PROGRAMS, 1..=5, Build::SnooMpicc);
}

/// Under AddressSanitizer at 3 ranks: the library never reads or writes outside the buffers,
/// counts and displacements the program gave.
#[test]
fn under_address_sanitizer() {
    for prog in PROGRAMS {
        let bin = build(prog, Build::MpiccAsan);
        same_under_both(prog, &bin, 3, Build::MpiccAsan);
    }
}

/// Under valgrind with SNOO's library at 2 ranks: no invalid access, no use of uninitialised
/// memory (scratch buffers, packed copies, reduction results).
#[test]
fn under_valgrind() {
    snoo_tests::mpi_programs::under_valgrind(&PROGRAMS, 2);
}
