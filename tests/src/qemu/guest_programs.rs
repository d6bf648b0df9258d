//! Executables for the guests: static C programs and Rust examples (the initramfs has no libc),
//! and MPI programs built by `mpicc` (dynamic, with the libraries they need) or `snoo-mpicc -static`.

use super::image::check_static;
use super::{with_context, workspace_root};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Compiles the C program `src` into a static executable for the guests (the initramfs has no
/// libc): `gcc -static` against `libsnoo_mpi.a`, which is (re)built first with the running test's
/// profile. Returns the executable, written under `target/<profile>/guest-bin/`.
pub fn static_c_program(src: &Path) -> io::Result<PathBuf> {
    static LIB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = LIB
        .get_or_init(|| build_static_lib().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)?;
    let stem = src
        .file_stem()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let out_dir = dir.join("guest-bin");
    fs::create_dir_all(&out_dir)?;
    // Linked under a private name, then renamed over the shared one: test processes running at the
    // same time never see a half-written executable, and runs leave one file per program.
    let out = out_dir.join(stem);
    let tmp = out_dir.join(format!(
        ".{}-{}",
        stem.to_string_lossy(),
        std::process::id()
    ));
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Werror", "-std=c11", "-I"])
        .arg(workspace_root().join("capi/include"))
        .arg(src)
        .arg("-o")
        .arg(&tmp)
        .arg(dir.join("libsnoo_mpi.a"))
        .args(["-lpthread", "-ldl", "-lm"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| with_context(e, "running gcc".into()))?;
    if !o.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "gcc -static {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    fs::rename(&tmp, &out)?;
    Ok(out)
}

/// Builds example `name` of package `package` as a static executable for the guests:
/// `RUSTFLAGS="-C target-feature=+crt-static" cargo build --target x86_64-unknown-linux-gnu
/// --example NAME`, in the running test's profile but in its own target directory
/// (`target/guest-static`), so that the flags never invalidate the workspace's normal builds.
/// Returns the executable, checked to have no program interpreter.
pub fn static_rust_example(package: &str, name: &str) -> io::Result<PathBuf> {
    const TRIPLE: &str = "x86_64-unknown-linux-gnu";
    let profile_dir = crate::profile_dir()?;
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target_dir = workspace_root().join("target").join("guest-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        package,
        "--example",
        name,
        "--target",
        TRIPLE,
    ])
    .arg("--manifest-path")
    .arg(workspace_root().join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    // RUSTFLAGS applies only to the target with --target, not to build scripts.
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env("RUSTFLAGS", "-C target-feature=+crt-static");
    crate::profile_args(&mut cmd, &profile);
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "crt-static build of {package} example {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let exe = target_dir
        .join(TRIPLE)
        .join(&profile)
        .join("examples")
        .join(name);
    check_static(&exe).map_err(|e| {
        io::Error::other(format!(
            "{} was built with crt-static but is not a static executable: {e}",
            exe.display()
        ))
    })?;
    Ok(exe)
}

/// Builds `libsnoo_mpi.a` in the running test's profile; returns the directory it is in.
fn build_static_lib() -> io::Result<PathBuf> {
    let dir = crate::cargo_build(&["-p", "snoo-mpi-capi", "--lib"])?;
    if !dir.join("libsnoo_mpi.a").is_file() {
        return Err(io::Error::other(
            "cargo build -p snoo-mpi-capi --lib made no libsnoo_mpi.a",
        ));
    }
    Ok(dir)
}

/// Compiles the C program `src` with Debian's `mpicc` (MPICH's compiler wrapper, package
/// libmpich-dev), unmodified and dynamically linked: the executable needs MPICH's
/// `libmpich.so.12`/`libmpi.so.12`, which [`mpich_abi_runtime`] replaces with SNOO's library in the
/// guest. Written as `target/<profile>/guest-bin/<stem>-mpicc`.
pub fn mpicc_program(src: &Path) -> io::Result<PathBuf> {
    let mut cmd = Command::new("mpicc");
    cmd.args(["-O2", "-Wall", "-Werror", "-std=c11", "-s"]);
    compile(cmd, src, "mpicc", "mpicc (install libmpich-dev)")
}

/// Compiles the C program `src` with SNOO's `snoo-mpicc -static` (the MPI standard ABI face,
/// `libmpi_abi.a`), both (re)built first with the running test's profile: a fully static
/// executable for the guests. Written as `target/<profile>/guest-bin/<stem>-static`.
pub fn snoo_mpicc_static_program(src: &Path) -> io::Result<PathBuf> {
    let dir = crate::cargo_build(&["-p", "snoo-libmpi-abi"])?;
    let mut cmd = Command::new(dir.join("snoo-mpicc"));
    // -s: libmpi_abi.a carries debug information the guest never needs (the initramfs is smaller).
    cmd.args(["-static", "-O2", "-Wall", "-Werror", "-std=c11", "-s"]);
    let exe = compile(cmd, src, "static", "snoo-mpicc -static")?;
    check_static(&exe)?;
    Ok(exe)
}

/// Runs the compiler command `cmd` on `src` into `guest-bin/<stem>-<suffix>` of the running test's
/// profile, linking under a private name first (see [`static_c_program`]).
fn compile(mut cmd: Command, src: &Path, suffix: &str, what: &str) -> io::Result<PathBuf> {
    let stem = src
        .file_stem()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy();
    let out_dir = crate::profile_dir()?.join("guest-bin");
    fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(format!("{stem}-{suffix}"));
    let tmp = out_dir.join(format!(".{stem}-{suffix}-{}", std::process::id()));
    let o = cmd
        .arg(src)
        .arg("-o")
        .arg(&tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| with_context(e, format!("running {what}")))?;
    if !o.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "{what} {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    fs::rename(&tmp, &out)?;
    Ok(out)
}

/// Where [`mpich_abi_runtime`] puts the shared libraries in the guest; run the program with
/// `LD_LIBRARY_PATH` set to it.
pub const GUEST_LIB_DIR: &str = "/lib/snoo";

/// The MPICH-ABI sonames SNOO's `libmpi.so` (crate `abi/mpich`) stands in for: Debian's `mpicc`
/// links `libmpich.so.12`, MPICH's own install names it `libmpi.so.12`.
pub const MPICH_SONAMES: [&str; 2] = ["libmpi.so.12", "libmpich.so.12"];

/// The files a dynamically linked MPICH-ABI executable `exe` needs in a guest, as
/// `(host path, guest path)`: SNOO's `libmpi.so` (built first with the running test's profile,
/// debug information stripped) under every soname in [`MPICH_SONAMES`], and every other library
/// `ldd` resolves for `exe` (glibc, libgcc_s ...) under [`GUEST_LIB_DIR`], plus the program
/// interpreter at its own absolute path. Fails if `exe` does not resolve its MPI library to SNOO's
/// copy, so that MPICH's library can never slip into the guest.
pub fn mpich_abi_runtime(exe: &Path) -> io::Result<Vec<(PathBuf, String)>> {
    let dir = crate::cargo_build(&["-p", "snoo-libmpi", "--lib"])?;
    let lib = dir.join("libmpi.so");
    let stage = dir.join("guest-lib");
    fs::create_dir_all(&stage)?;
    let stripped = stage.join("libmpi.so");
    let tmp = stage.join(format!(".libmpi.so-{}", std::process::id()));
    let o = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&tmp)
        .arg(&lib)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| with_context(e, "running strip".into()))?;
    if !o.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "strip {}: {}",
            lib.display(),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    fs::rename(&tmp, &stripped)?;
    // ldd resolves against a directory that holds SNOO's library under the MPICH sonames.
    let resolve = stage.join("resolve");
    fs::create_dir_all(&resolve)?;
    for soname in MPICH_SONAMES {
        let link = resolve.join(soname);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&stripped, &link)?;
    }
    let o = Command::new("ldd")
        .arg(exe)
        .env("LD_LIBRARY_PATH", &resolve)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| with_context(e, "running ldd".into()))?;
    let text = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        return Err(io::Error::other(format!(
            "ldd {}: {text}{}",
            exe.display(),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    let mut files: Vec<(PathBuf, String)> = MPICH_SONAMES
        .iter()
        .map(|s| (stripped.clone(), format!("{GUEST_LIB_DIR}/{s}")))
        .collect();
    let mut mpi = false;
    for line in text.lines().map(str::trim) {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2
        // (0x...)", "linux-vdso.so.1 (0x...)".
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [name, "=>", path, _] => {
                if MPICH_SONAMES.contains(name) {
                    if !path.starts_with(&*resolve.to_string_lossy()) {
                        return Err(io::Error::other(format!(
                            "{} resolves {name} to {path}, not to SNOO's library",
                            exe.display()
                        )));
                    }
                    mpi = true;
                } else {
                    files.push((PathBuf::from(path), format!("{GUEST_LIB_DIR}/{name}")));
                }
            }
            [path, _] if path.starts_with('/') => {
                files.push((PathBuf::from(path), path.to_string()));
            }
            [name, _] if name.starts_with("linux-vdso") => {}
            _ => {
                return Err(io::Error::other(format!(
                    "ldd {}: unexpected line {line:?}",
                    exe.display()
                )))
            }
        }
    }
    if !mpi {
        return Err(io::Error::other(format!(
            "{} needs none of {MPICH_SONAMES:?}:\n{text}",
            exe.display()
        )));
    }
    Ok(files)
}
