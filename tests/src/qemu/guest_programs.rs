//! Static executables for the guests (the initramfs has no libc): C programs and Rust examples.

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
