//! Generates the stubs of every MPI function the library does not implement (each returns
//! MPI_ERR_UNSUPPORTED_OPERATION naming itself), sets the soname, and writes `snoo-mpich.pc`
//! next to the library (target/<profile>/), as capi does for `snoo-mpi.pc`.

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
    // The name binaries built against MPICH look for (Debian's link as libmpich.so.12, which
    // snoo-run provides as a link to this file).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmpi.so.12");
    write_pc();
}

/// Writes `snoo-mpich.pc`: the link flags for `libmpi.so` (soname libmpi.so.12). This face has
/// no header of its own: programs compile with MPICH's `mpi.h`
/// (`pkg-config --cflags mpich` on Debian), which is what its binary interface is.
fn write_pc() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is target/<profile>/build/<pkg>-<hash>/out.
    let Some(libdir) = out.ancestors().nth(3) else {
        return;
    };
    let pc = format!(
        "libdir={}\n\nName: snoo-mpich\nDescription: SNOO's MPI library in MPICH's binary interface (libmpi.so.12); compile with MPICH's mpi.h\nVersion: {}\nLibs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lmpi\n",
        libdir.display(),
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    // Best effort: a read-only target directory must not fail the build.
    let _ = std::fs::write(libdir.join("snoo-mpich.pc"), pc);
}
