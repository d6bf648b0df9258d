//! Writes `snoo-mpi.pc` next to the libraries (target/<profile>/), so that after `cargo build`
//! C programs can use `PKG_CONFIG_PATH=target/release pkg-config --cflags --libs snoo-mpi`.
//! (Cargo has no install step for C artifacts; writing beside them is the practical place.)

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is target/<profile>/build/<pkg>-<hash>/out.
    let Some(libdir) = out.ancestors().nth(3) else {
        return;
    };
    let include =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("include");
    let pc = format!(
        "includedir={}\nlibdir={}\n\nName: snoo-mpi\nDescription: SNOO_MPI, MPI-like messaging between VMs through shared memory\nVersion: {}\nCflags: -I${{includedir}}\nLibs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lsnoo_mpi\nLibs.private: -lpthread -ldl -lm\n",
        include.display(),
        libdir.display(),
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    // Best effort: a read-only target directory must not fail the build.
    let _ = std::fs::write(libdir.join("snoo-mpi.pc"), pc);
}
