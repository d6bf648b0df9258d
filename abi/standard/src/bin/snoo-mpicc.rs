//! `snoo-mpicc`: compiles and links C programs against SNOO's MPI 5.0 standard-ABI library,
//! `libmpi_abi.so.1`, the way `mpicc` does for other MPI implementations.
//!
//! It runs the C compiler (`$SNOO_CC`, else `cc`) with the caller's arguments, adding
//! `-I<include dir>` in front and, when the command links (none of `-c`, `-E`, `-S`, `-M`,
//! `-MM` is given), `-L<lib dir> -Wl,-rpath,<lib dir> -lmpi_abi` after them.
//!
//! - include dir: `abi/standard/include` of the source tree this wrapper was built from, or
//!   `$SNOO_MPI_INCLUDE`;
//! - lib dir: the directory of this executable, which cargo builds into `target/<profile>/` next
//!   to the libraries, or `$SNOO_MPI_LIBDIR`.
//!
//! Options of its own (removed before the compiler sees the arguments):
//!
//! - `-show`: print the compiler command instead of running it;
//! - `--static`: link `<lib dir>/libmpi_abi.a` and the system libraries a Rust static library
//!   needs, instead of the shared library; the rest of the program links as usual.
//!
//! `-static` (a fully static executable) is passed on to the compiler and also selects
//! `libmpi_abi.a`. `$SNOO_CC` may hold a command with arguments, split at white space
//! (`SNOO_CC="ccache gcc"`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// System libraries that a Rust `staticlib` needs (`rustc --print native-static-libs` on
/// x86_64-unknown-linux-gnu), after the always-linked libc. `-lgcc_s` is left to the
/// dynamic-link case: with `-static`, the compiler driver links libgcc_eh for unwinding.
const STATIC_DEPS: &[&str] = &["-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

/// Arguments that stop the compiler before linking.
const NO_LINK: &[&str] = &["-c", "-E", "-S", "-M", "-MM"];

/// The command to run: the compiler and its arguments.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    compiler: Vec<String>,
    args: Vec<OsString>,
    show: bool,
}

/// Builds the compiler command from the wrapper's arguments. `cc` is the value of `$SNOO_CC`.
fn plan(
    user: Vec<OsString>,
    cc: Option<&str>,
    include: &Path,
    libdir: &Path,
) -> Result<Plan, String> {
    let compiler: Vec<String> = cc
        .unwrap_or("cc")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if compiler.is_empty() {
        return Err("SNOO_CC is set but empty; set it to a C compiler such as gcc".into());
    }
    let mut show = false;
    let mut static_mpi = false;
    let mut links = true;
    let mut passed = Vec::with_capacity(user.len());
    for arg in user {
        match arg.to_str() {
            Some("-show") => show = true,
            Some("--static") => static_mpi = true,
            Some(a) => {
                if a == "-static" {
                    static_mpi = true;
                }
                if NO_LINK.contains(&a) {
                    links = false;
                }
                passed.push(arg);
            }
            None => passed.push(arg),
        }
    }
    let fully_static = passed.iter().any(|a| a == "-static");

    let mut args: Vec<OsString> = Vec::with_capacity(passed.len() + 8);
    args.push(join("-I", include));
    args.extend(passed);
    if links {
        if static_mpi {
            args.push(libdir.join("libmpi_abi.a").into_os_string());
            if !fully_static {
                args.push("-lgcc_s".into());
            }
            args.extend(STATIC_DEPS.iter().map(OsString::from));
        } else {
            args.push(join("-L", libdir));
            args.push(join("-Wl,-rpath,", libdir));
            args.push("-lmpi_abi".into());
        }
    }
    Ok(Plan {
        compiler,
        args,
        show,
    })
}

fn join(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(path.as_os_str());
    s
}

/// A shell word for `-show`: quoted when it holds anything a shell would interpret.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=+,./:@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn include_dir() -> PathBuf {
    match std::env::var_os("SNOO_MPI_INCLUDE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("include"),
    }
}

fn lib_dir() -> Result<PathBuf, String> {
    match std::env::var_os("SNOO_MPI_LIBDIR") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot locate this executable ({e}); set SNOO_MPI_LIBDIR"))?;
            let exe = exe.canonicalize().unwrap_or(exe);
            exe.parent().map(Path::to_path_buf).ok_or_else(|| {
                format!(
                    "{} has no parent directory; set SNOO_MPI_LIBDIR",
                    exe.display()
                )
            })
        }
    }
}

fn run() -> Result<(), String> {
    let cc = std::env::var("SNOO_CC").ok();
    let user: Vec<OsString> = std::env::args_os().skip(1).collect();
    let plan = plan(user, cc.as_deref(), &include_dir(), &lib_dir()?)?;

    if plan.show {
        let words: Vec<String> = plan
            .compiler
            .iter()
            .cloned()
            .chain(plan.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .map(|w| shell_word(&w))
            .collect();
        println!("{}", words.join(" "));
        return Ok(());
    }

    let mut cmd = Command::new(&plan.compiler[0]);
    cmd.args(&plan.compiler[1..]).args(&plan.args);
    // exec only returns on failure; on success the compiler's exit status is ours.
    let err = cmd.exec();
    Err(if err.kind() == std::io::ErrorKind::NotFound {
        format!(
            "C compiler `{}` not found; install one or point SNOO_CC at it",
            plan.compiler[0]
        )
    } else {
        format!("cannot run `{}`: {err}", plan.compiler[0])
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("snoo-mpicc: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn strings(p: &Plan) -> Vec<String> {
        p.compiler
            .iter()
            .cloned()
            .chain(p.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect()
    }

    const INC: &str = "/src/abi/standard/include";
    const LIB: &str = "/src/target/release";

    fn planned(words: &[&str], cc: Option<&str>) -> Plan {
        plan(args(words), cc, Path::new(INC), Path::new(LIB)).unwrap()
    }

    #[test]
    fn links_the_shared_library_by_default() {
        let p = planned(&["-O2", "hello.c", "-o", "hello"], None);
        assert!(!p.show);
        assert_eq!(
            strings(&p),
            [
                "cc",
                "-I/src/abi/standard/include",
                "-O2",
                "hello.c",
                "-o",
                "hello",
                "-L/src/target/release",
                "-Wl,-rpath,/src/target/release",
                "-lmpi_abi"
            ]
        );
    }

    #[test]
    fn compile_only_adds_just_the_include_dir() {
        for flag in ["-c", "-E", "-S", "-M", "-MM"] {
            let p = planned(&[flag, "x.c"], Some("gcc"));
            assert_eq!(
                strings(&p),
                ["gcc", "-I/src/abi/standard/include", flag, "x.c"]
            );
        }
    }

    #[test]
    fn show_is_consumed_and_reported() {
        let p = planned(&["-show", "x.c"], None);
        assert!(p.show);
        assert!(!strings(&p).contains(&"-show".to_string()));
    }

    #[test]
    fn static_links_the_archive_and_its_dependencies() {
        let p = planned(&["x.c", "--static"], None);
        let s = strings(&p);
        assert!(!s.contains(&"--static".to_string()));
        assert_eq!(
            &s[3..],
            [
                "/src/target/release/libmpi_abi.a",
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl"
            ]
        );

        let p = planned(&["-static", "x.c"], None);
        let s = strings(&p);
        assert_eq!(s[2], "-static", "-static goes on to the compiler");
        assert!(s.contains(&"/src/target/release/libmpi_abi.a".to_string()));
        assert!(
            !s.contains(&"-lgcc_s".to_string()),
            "no shared libgcc in a static link"
        );
        assert!(!s.contains(&"-lmpi_abi".to_string()));
    }

    #[test]
    fn compiler_may_carry_arguments() {
        let p = planned(&["-c", "x.c"], Some("ccache  gcc -m64"));
        assert_eq!(p.compiler, ["ccache", "gcc", "-m64"]);
        assert!(plan(args(&["x.c"]), Some("  "), Path::new(INC), Path::new(LIB)).is_err());
    }

    #[test]
    fn show_quotes_what_a_shell_would_split() {
        assert_eq!(shell_word("-I/a/b"), "-I/a/b");
        assert_eq!(shell_word("-Wl,-rpath,/x"), "-Wl,-rpath,/x");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
