//! Generates the stubs of every MPI function the library does not implement (each returns
//! MPI_ERR_UNSUPPORTED_OPERATION naming itself), sets the soname, and writes `snoo-mpi-abi.pc`
//! next to the libraries (target/<profile>/), so that after `cargo build` C programs can use
//! `PKG_CONFIG_PATH=target/debug pkg-config --cflags --libs snoo-mpi-abi` (as capi does for
//! `snoo-mpi.pc`: cargo has no install step for C artifacts).

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
    write_pc(root);
}

/// Writes `snoo-mpi-abi.pc`: this face's mpi.h and `-lmpi_abi`; `Libs.private` holds what
/// `pkg-config --static` adds for `libmpi_abi.a` (the system libraries a Rust static library
/// needs, as snoo-mpicc links them).
fn write_pc(root: &std::path::Path) {
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is target/<profile>/build/<pkg>-<hash>/out.
    let Some(libdir) = out.ancestors().nth(3) else {
        return;
    };
    let pc = format!(
        "includedir={}\nlibdir={}\n\nName: snoo-mpi-abi\nDescription: SNOO's MPI library in the MPI 5.0 standard ABI (libmpi_abi.so.1)\nVersion: {}\nCflags: -I${{includedir}}\nLibs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lmpi_abi\nLibs.private: -lutil -lrt -lpthread -lm -ldl\n",
        root.join("include").display(),
        libdir.display(),
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    // Best effort: a read-only target directory must not fail the build.
    let _ = std::fs::write(libdir.join("snoo-mpi-abi.pc"), pc);
}
