//! The MPI test programs of tests/mpi, each built three ways (Debian's `mpicc`, MPICH 5's
//! `mpicc_abi`, SNOO's `snoo-mpicc`) and run at 1 to 4 ranks under real MPICH and under SNOO with
//! the same checked output; also under AddressSanitizer and valgrind. A program that fails under
//! MPICH is a wrong test, and the harness says so.

use snoo_tests::mpi_programs::{
    build, every_program_and_size, ok_line, run_mpich, run_snoo, same_under_both, Build,
};

/// The programs that must print the same under both (fatal.c ends its job on purpose: below).
const PROGRAMS: [&str; 10] = [
    "p2p", "comm", "datatype", "requests", "errors", "coll", "env", "ssend", "exchange", "info",
];

#[test]
fn built_by_debian_mpicc_same_under_mpich_and_snoo() {
    every_program_and_size(&PROGRAMS, 1..=4, Build::Mpicc);
}

#[test]
fn built_by_mpicc_abi_same_under_mpich_and_snoo() {
    every_program_and_size(&PROGRAMS, 1..=4, Build::MpiccAbi);
}

#[test]
fn built_by_snoo_mpicc_same_under_mpich_and_snoo() {
    every_program_and_size(&PROGRAMS, 1..=4, Build::SnooMpicc);
}

/// MPI_Waitany and MPI_Waitsome sleep while nothing arrives: tests/mpi/idle_wait.c, same output
/// under both, and under SNOO rank 0 uses at most 300 ms of CPU in its 2 s of waiting (polling,
/// as they did and as MPICH does, took all of it).
#[test]
fn waitany_and_waitsome_sleep_under_snoo() {
    let bin = build("idle_wait", Build::Mpicc);
    let m = run_mpich(&bin, 2, Build::Mpicc);
    m.assert_ok("idle_wait under MPICH (a test that fails there is wrong)");
    let s = run_snoo(&bin, 2, &["env", "MT_MAX_CPU_MS=300"]);
    s.assert_ok("idle_wait under SNOO");
    assert_eq!(
        s.stdout, m.stdout,
        "SNOO's output (left) differs from MPICH's (right)"
    );
    assert!(s.stdout.ends_with(&ok_line("idle_wait")), "{}", s.stdout);
}

/// MPI_ERRORS_ARE_FATAL: an error ends the whole job, blocked ranks included, with a non-zero
/// status under both, and SNOO's message names the call and the rank, as MPICH's does.
#[test]
fn a_fatal_error_ends_the_job_under_both() {
    for how in Build::ALL {
        let bin = build("fatal", how);
        for n in [1, 3] {
            let m = run_mpich(&bin, n, how);
            let s = run_snoo(&bin, n, &[]);
            for (who, r) in [("MPICH", &m), ("SNOO", &s)] {
                assert!(
                    r.code.is_some_and(|c| c != 0 && c != 124),
                    "{who} {how:?} {n} ranks: exit {:?} (124: hung)\n{}",
                    r.code,
                    r.stderr
                );
                assert!(!r.stdout.contains("still running") && !r.stdout.contains("nobody sent"));
            }
            let culprit = format!("Fatal error in MPI_Send on rank {}", n - 1);
            assert!(
                s.stderr.contains(&culprit) && s.stderr.contains("Invalid rank"),
                "SNOO's message should name the call, rank and reason: {}",
                s.stderr
            );
        }
    }
}

/// Every program built with AddressSanitizer, at 2 ranks: no error in the program's view of the
/// library's memory (the buffers it fills, the strings it returns) under SNOO, and the same
/// output as under MPICH.
#[test]
fn under_address_sanitizer() {
    for prog in PROGRAMS {
        let bin = build(prog, Build::MpiccAsan);
        same_under_both(prog, &bin, 2, Build::MpiccAsan);
    }
}

/// Every program under valgrind with SNOO's library, at 2 ranks: no invalid read or write, no use
/// of uninitialised memory, in the program or in SNOO's library.
#[test]
fn under_valgrind() {
    snoo_tests::mpi_programs::under_valgrind(&PROGRAMS, 2);
}
