//! Generates the stubs of every MPI function the library does not implement (each returns
//! MPI_ERR_UNSUPPORTED_OPERATION naming itself), and sets the soname.

include!("../stubs.rs");

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("stubs.rs");
    write_stubs(
        &root.join("../functions.txt"),
        &[
            &root.join("../../mpi/src/exports.rs"),
            &root.join("src/convert.rs"),
        ],
        &out,
    )
    .expect("writing the MPI stubs");
    // The standard's library name: what binaries built for the MPI 5.0 ABI look for.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmpi_abi.so.1");
}
