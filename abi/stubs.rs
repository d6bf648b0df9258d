// Stub generation for SNOO's C ABI faces (`libmpi.so.12`, `libmpi_abi.so.1`).
//
// This file is meant to be `include!`d at item level by each face crate's build.rs:
//
//     include!("../abi/stubs.rs");
//
//     fn main() {
//         let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
//         let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("stubs.rs");
//         write_stubs(&root.join("../abi/functions.txt"), &[&root.join("src/ffi.rs")], &out)
//             .expect("writing the MPI stubs");
//     }
//
// and the face crate then has `include!(concat!(env!("OUT_DIR"), "/stubs.rs"));` in its library,
// next to a `fn unsupported(name: &'static str) -> std::ffi::c_int` at the crate root that
// reports the call and returns an error code.
//
// A function counts as implemented when one of the given Rust files has a line that starts
// (after white space) with `fn Name(`, `Name` being the MPI name without its `MPI_` prefix: the
// shape of a declaration in a list of functions that a macro expands into both `MPI_Name` and
// `PMPI_Name`. Every other function of abi/functions.txt that returns `int` gets a stub under both
// names; one that returns anything else (MPI_Wtime, MPI_Aint_add, the c2f/f2c conversions, ...)
// has no error code to return, so leaving it out is a build error.
//
// Everything except `write_stubs` lives in the `snoo_abi_stubs` module so that the including
// build script's own names cannot clash with it. No external crates are needed, and the file
// also compiles on its own (`rustc --test abi/stubs.rs`), which is how its tests can run
// without a build script.

/// Reads the function list, scans `implemented` for implemented functions and writes the stubs
/// for the rest to `out`. Also prints `cargo:rerun-if-changed` for every file it reads.
///
/// Panics, naming them, when functions that do not return `int` are not implemented.
#[allow(dead_code)]
fn write_stubs(
    functions_txt: &::std::path::Path,
    implemented: &[&::std::path::Path],
    out: &::std::path::Path,
) -> ::std::io::Result<()> {
    snoo_abi_stubs::write_stubs(functions_txt, implemented, out)
}

#[allow(dead_code)]
mod snoo_abi_stubs {
    use std::collections::BTreeSet;
    use std::io;
    use std::path::Path;

    /// One line of abi/functions.txt.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Function {
        /// The C name, `MPI_...`.
        pub name: String,
        /// The C return type, e.g. `int`, `double`, `MPI_Aint`.
        pub ret: String,
    }

    /// Parses the list: `MPI_Name <return type>` per line; blank lines and lines starting
    /// with `#` are skipped.
    pub fn parse_functions(text: &str) -> Result<Vec<Function>, String> {
        let mut seen = BTreeSet::new();
        let mut functions = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default();
            let ret = words.collect::<Vec<_>>().join(" ");
            let valid_name = name.len() > 4
                && name.starts_with("MPI_")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name || ret.is_empty() {
                return Err(format!(
                    "line {}: expected `MPI_Name <return type>`, found `{line}`",
                    i + 1
                ));
            }
            if !seen.insert(name.to_string()) {
                return Err(format!("line {}: {name} is listed twice", i + 1));
            }
            functions.push(Function {
                name: name.to_string(),
                ret,
            });
        }
        Ok(functions)
    }

    /// The names `Name` (without `MPI_`) of every line shaped `^\s*fn Name(` in `source`.
    pub fn scan_implemented(source: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for line in source.lines() {
            let Some(rest) = line.trim_start().strip_prefix("fn ") else {
                continue;
            };
            let end = rest
                .bytes()
                .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
                .unwrap_or(rest.len());
            if end > 0 && rest[end..].starts_with('(') {
                names.insert(rest[..end].to_string());
            }
        }
        names
    }

    /// What the generated file will hold.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Plan {
        /// Every function of the list, in list order.
        pub all: Vec<String>,
        /// The `int` functions that get stubs, in list order.
        pub unsupported: Vec<String>,
    }

    /// Splits the list into implemented functions and stubs. Errs naming the functions that
    /// cannot be stubbed because they do not return `int`.
    pub fn plan(functions: &[Function], implemented: &BTreeSet<String>) -> Result<Plan, String> {
        let mut unsupported = Vec::new();
        let mut missing = Vec::new();
        for f in functions {
            if implemented.contains(&f.name["MPI_".len()..]) {
                continue;
            }
            if f.ret == "int" {
                unsupported.push(f.name.clone());
            } else {
                missing.push(format!("{} (returns {})", f.name, f.ret));
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "these MPI functions do not return an error code, so they cannot be stubbed and \
                 must be implemented (as `fn Name(` in the scanned sources): {}",
                missing.join(", ")
            ));
        }
        Ok(Plan {
            all: functions.iter().map(|f| f.name.clone()).collect(),
            unsupported,
        })
    }

    /// The Rust source of the stubs and the name lists.
    pub fn render(plan: &Plan) -> String {
        let mut s = String::new();
        s.push_str(
            "// Generated by abi/stubs.rs from abi/functions.txt; do not edit.\n\
             //\n\
             // Every stub is declared without parameters whatever the C prototype says. On the\n\
             // x86-64 System V ABI that is sound: arguments travel in registers and in stack\n\
             // slots that the caller reserves and the caller releases, so a callee that reads\n\
             // none of them simply ignores them (variadic MPI_Pcontrol included). The return\n\
             // value is an int in eax, as every C caller of these functions expects.\n\n",
        );
        s.push_str(&format!(
            "// {} functions in the list, {} of them stubbed.\n\n",
            plan.all.len(),
            plan.unsupported.len()
        ));
        for name in &plan.unsupported {
            let base = &name["MPI_".len()..];
            for prefix in ["PMPI_", "MPI_"] {
                s.push_str(&format!(
                    "#[doc(hidden)]\n#[unsafe(no_mangle)]\npub extern \"C\" fn {prefix}{base}() -> \
                     ::std::ffi::c_int {{\n    crate::unsupported(\"{name}\")\n}}\n"
                ));
            }
        }
        s.push_str(
            "\n/// The MPI functions that this library exports only as stubs returning an error.\n",
        );
        s.push_str(&name_list("UNSUPPORTED", &plan.unsupported));
        s.push_str("\n/// Every MPI function of the C interface (abi/functions.txt), implemented or not.\n");
        s.push_str(&name_list("ALL_FUNCTIONS", &plan.all));
        s
    }

    fn name_list(constant: &str, names: &[String]) -> String {
        let mut s = format!("pub const {constant}: &[&str] = &[\n");
        for n in names {
            s.push_str(&format!("    \"{n}\",\n"));
        }
        s.push_str("];\n");
        s
    }

    fn invalid(path: &Path, msg: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {msg}", path.display()),
        )
    }

    pub fn write_stubs(functions_txt: &Path, implemented: &[&Path], out: &Path) -> io::Result<()> {
        println!("cargo:rerun-if-changed={}", functions_txt.display());
        let text = std::fs::read_to_string(functions_txt)?;
        let functions = parse_functions(&text).map_err(|e| invalid(functions_txt, e))?;
        let mut names = BTreeSet::new();
        for path in implemented {
            println!("cargo:rerun-if-changed={}", path.display());
            names.extend(scan_implemented(&std::fs::read_to_string(path)?));
        }
        let plan = match plan(&functions, &names) {
            Ok(plan) => plan,
            Err(e) => panic!("{e}"),
        };
        let code = render(&plan);
        // Leave an unchanged file alone, so that its timestamp does not trigger rebuilds.
        if std::fs::read_to_string(out).is_ok_and(|old| old == code) {
            return Ok(());
        }
        std::fs::write(out, code)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const LIST: &str = "# comment\n\nMPI_Send int\nMPI_Recv int\n  MPI_Wtime  double \nMPI_Comm_f2c MPI_Comm\n";

        fn set(names: &[&str]) -> BTreeSet<String> {
            names.iter().map(|s| s.to_string()).collect()
        }

        #[test]
        fn parses_names_and_return_types() {
            let f = parse_functions(LIST).unwrap();
            assert_eq!(f.len(), 4);
            assert_eq!(
                f[0],
                Function {
                    name: "MPI_Send".into(),
                    ret: "int".into()
                }
            );
            assert_eq!(
                f[2],
                Function {
                    name: "MPI_Wtime".into(),
                    ret: "double".into()
                }
            );
            assert_eq!(f[3].ret, "MPI_Comm");
        }

        #[test]
        fn rejects_malformed_lines() {
            assert!(parse_functions("MPI_Send\n")
                .unwrap_err()
                .contains("line 1"));
            assert!(parse_functions("# x\nSend int\n")
                .unwrap_err()
                .contains("line 2"));
            assert!(parse_functions("MPI_ int\n").is_err());
            assert!(parse_functions("MPI_A-b int\n").is_err());
            assert!(parse_functions("MPI_Send int\nMPI_Send int\n")
                .unwrap_err()
                .contains("twice"));
        }

        #[test]
        fn scans_fn_lines_only() {
            let src = "\
                macro_rules! x { () => {} }\n\
                    fn Send(buf: *const c_void, count: c_int) -> c_int;\n\
                \tfn Wtime() -> f64;\n\
                fn Recv (a: i32);\n\
                pub fn Probe(x: i32);\n\
                // fn Bcast(x);\n\
                fn  Barrier(c: i32);\n\
                fn Comm_f2c(c: MPI_Fint) -> MPI_Comm;\n\
                fn (x);\n";
            assert_eq!(scan_implemented(src), set(&["Comm_f2c", "Send", "Wtime"]));
        }

        #[test]
        fn plans_stubs_for_unimplemented_int_functions() {
            let f = parse_functions(LIST).unwrap();
            let p = plan(&f, &set(&["Send", "Wtime", "Comm_f2c", "Unrelated"])).unwrap();
            assert_eq!(p.unsupported, vec!["MPI_Recv"]);
            assert_eq!(
                p.all,
                vec!["MPI_Send", "MPI_Recv", "MPI_Wtime", "MPI_Comm_f2c"]
            );
        }

        #[test]
        fn refuses_to_stub_non_int_functions() {
            let f = parse_functions(LIST).unwrap();
            let e = plan(&f, &set(&["Send", "Recv"])).unwrap_err();
            assert!(e.contains("MPI_Wtime (returns double)"), "{e}");
            assert!(e.contains("MPI_Comm_f2c (returns MPI_Comm)"), "{e}");
        }

        #[test]
        fn renders_both_symbols_and_the_lists() {
            let p = Plan {
                all: vec!["MPI_Send".into(), "MPI_Recv".into()],
                unsupported: vec!["MPI_Recv".into()],
            };
            let code = render(&p);
            assert!(code.contains(
                "pub extern \"C\" fn PMPI_Recv() -> ::std::ffi::c_int {\n    crate::unsupported(\"MPI_Recv\")\n}"
            ));
            assert!(code.contains(
                "pub extern \"C\" fn MPI_Recv() -> ::std::ffi::c_int {\n    crate::unsupported(\"MPI_Recv\")\n}"
            ));
            assert!(!code.contains("fn MPI_Send"));
            assert!(code.contains("pub const UNSUPPORTED: &[&str] = &[\n    \"MPI_Recv\",\n];"));
            assert!(code.contains(
                "pub const ALL_FUNCTIONS: &[&str] = &[\n    \"MPI_Send\",\n    \"MPI_Recv\",\n];"
            ));
        }

        fn scratch(name: &str) -> std::path::PathBuf {
            let dir =
                std::env::temp_dir().join(format!("snoo-abi-stubs-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        #[test]
        fn writes_the_file() {
            let dir = scratch("write");
            let (list, src, out) = (
                dir.join("functions.txt"),
                dir.join("ffi.rs"),
                dir.join("stubs.rs"),
            );
            std::fs::write(&list, LIST).unwrap();
            std::fs::write(&src, "fn Wtime() -> f64;\nfn Comm_f2c(c: i32) -> usize;\n").unwrap();
            write_stubs(&list, &[&src], &out).unwrap();
            let code = std::fs::read_to_string(&out).unwrap();
            assert!(code.contains("fn PMPI_Send()") && code.contains("fn MPI_Recv()"));
            assert!(!code.contains("fn MPI_Wtime"));
            std::fs::remove_dir_all(&dir).unwrap();
        }

        #[test]
        #[should_panic(expected = "MPI_Wtime (returns double)")]
        fn panics_on_missing_non_int_functions() {
            let dir = scratch("panic");
            let (list, out) = (dir.join("functions.txt"), dir.join("stubs.rs"));
            std::fs::write(&list, LIST).unwrap();
            let _ = write_stubs(&list, &[], &out);
        }

        /// The real list parses, and its non-`int` functions are exactly those the faces must
        /// implement by hand.
        #[test]
        fn the_real_list() {
            // file!() is relative to where rustc ran: the repository root for a plain
            // `rustc --test abi/stubs.rs`, the workspace root under cargo (whose tests run in
            // the package directory).
            let here = Path::new(file!()).parent().unwrap().join("functions.txt");
            let mut candidates = vec![here.clone()];
            if let Some(dir) = option_env!("CARGO_MANIFEST_DIR") {
                candidates.extend(Path::new(dir).ancestors().map(|a| a.join(&here)));
            }
            let text = candidates
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_else(|| panic!("functions.txt not found in {candidates:?}"));
            let f = parse_functions(&text).unwrap();
            assert!(f.len() > 600, "{}", f.len());
            let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "functions.txt is kept sorted");
            for n in [
                "MPI_Send",
                "MPI_Send_c",
                "MPI_Abi_get_version",
                "MPI_Status_c2f",
                "MPI_Address",
            ] {
                assert!(names.contains(&n), "{n}");
            }
            assert!(!names
                .iter()
                .any(|n| n.starts_with("MPIX_") || n.contains("f08")));
            let odd: Vec<String> = f
                .iter()
                .filter(|f| f.ret != "int")
                .map(|f| format!("{} {}", f.name, f.ret))
                .collect();
            assert_eq!(odd.len(), 37, "{odd:?}");
            assert!(odd.contains(&"MPI_Wtime double".to_string()));
            assert!(odd.contains(&"MPI_Aint_diff MPI_Aint".to_string()));
            assert!(odd.contains(&"MPI_Type_c2f MPI_Fint".to_string()));
            assert!(odd.contains(&"MPI_Type_f2c MPI_Datatype".to_string()));
            assert!(odd.contains(&"MPI_Win_fromint MPI_Win".to_string()));
        }
    }
}
