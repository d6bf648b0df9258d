//! `include/snoo_mpi.h` against the Rust side, so that no constant can drift: every integer
//! `#define SNOO_MPI_*` of the header has a Rust constant of the same value and every constant of
//! the ABI is in the header; the C compiler's view of the header (values, `SNOO_MPI_Status`'s
//! layout, the sizes of the C types behind the datatypes) matches Rust's; every error code has its
//! own description.

use crate::abi::{self, code, datatype, type_size, CStatus};
use crate::calls::SNOO_MPI_Error_string;
use snoo::error::describe;
use std::collections::BTreeMap;
use std::ffi::{c_int, CStr};
use std::mem::{align_of, offset_of, size_of};
use std::path::Path;
use std::process::Command;

const HEADER: &str = include_str!("../include/snoo_mpi.h");

/// The header's `SNOO_MPI_*` defines that are not integers: the include guard, and two typed
/// constants that the C compiler checks in [`c_compiler_agrees`].
const NOT_INTEGERS: &[&str] = &[
    "SNOO_MPI_H",
    "SNOO_MPI_REQUEST_NULL",
    "SNOO_MPI_STATUS_IGNORE",
];

/// `(SNOO_MPI_NAME, value)` for Rust constants `module::NAME`.
macro_rules! named {
    ($($m:ident :: $c:ident),* $(,)?) => {
        vec![$((concat!("SNOO_MPI_", stringify!($c)), i64::from($m::$c))),*]
    };
}

/// The error codes, without `ERR_LASTCODE`.
fn error_codes() -> Vec<(&'static str, i64)> {
    named![
        code::SUCCESS,
        code::ERR_BUFFER,
        code::ERR_COUNT,
        code::ERR_TYPE,
        code::ERR_TAG,
        code::ERR_COMM,
        code::ERR_RANK,
        code::ERR_REQUEST,
        code::ERR_TRUNCATE,
        code::ERR_NOT_INITIALIZED,
        code::ERR_ALREADY_INITIALIZED,
        code::ERR_NO_POOL,
        code::ERR_POOL_TOO_SMALL,
        code::ERR_TIMEOUT,
        code::ERR_PEER_DEAD,
        code::ERR_PROTOCOL,
        code::ERR_DEVICE,
        code::ERR_ARG,
        code::ERR_INTERN,
        code::ERR_NO_MEM,
    ]
}

/// The datatypes, with the C type of one element.
fn datatypes() -> Vec<(&'static str, i64, &'static str)> {
    let c_types = [
        "char",
        "unsigned char",
        "int",
        "long",
        "float",
        "double",
        "unsigned char",
        "unsigned int",
        "unsigned long",
        "short",
        "unsigned short",
        "long long",
        "unsigned long long",
    ];
    let names = named![
        datatype::CHAR,
        datatype::BYTE,
        datatype::INT,
        datatype::LONG,
        datatype::FLOAT,
        datatype::DOUBLE,
        datatype::UNSIGNED_CHAR,
        datatype::UNSIGNED,
        datatype::UNSIGNED_LONG,
        datatype::SHORT,
        datatype::UNSIGNED_SHORT,
        datatype::LONG_LONG,
        datatype::UNSIGNED_LONG_LONG,
    ];
    assert_eq!(names.len(), c_types.len());
    names
        .into_iter()
        .zip(c_types)
        .map(|((n, v), t)| (n, v, t))
        .collect()
}

/// Every integer constant of the C ABI on the Rust side, by its name in the header.
fn rust_constants() -> BTreeMap<&'static str, i64> {
    let mut all = error_codes();
    all.extend(named![code::ERR_LASTCODE]);
    all.extend(datatypes().into_iter().map(|(n, v, _)| (n, v)));
    all.extend(named![abi::COMM_WORLD, abi::ANY_SOURCE, abi::ANY_TAG]);
    let map: BTreeMap<_, _> = all.iter().copied().collect();
    assert_eq!(map.len(), all.len(), "a name twice in the Rust list");
    map
}

/// A C integer literal, maybe negative and in parentheses (`19`, `(-1)`, `0x10`).
fn parse_int(v: &str) -> Option<i64> {
    let mut v = v.trim();
    while let Some(inner) = v.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        v = inner.trim();
    }
    let (neg, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d.trim()),
        None => (false, v),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None if digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse().ok()?,
        None => return None,
    };
    Some(if neg { -n } else { n })
}

/// Every `#define SNOO_MPI_*` of the header: name, and its value if it is an integer.
fn header_defines() -> BTreeMap<String, Option<i64>> {
    let mut defines = BTreeMap::new();
    for line in HEADER.lines() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix("define") else {
            continue;
        };
        if !rest.starts_with([' ', '\t']) {
            continue;
        }
        let rest = rest.trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, value) = rest.split_at(end);
        if !name.starts_with("SNOO_MPI_") {
            continue;
        }
        // A function-like macro (`NAME(`) or an expression is not an integer literal.
        let int = if value.starts_with('(') {
            None
        } else {
            let value = value.split("/*").next().unwrap_or("");
            parse_int(value.split("//").next().unwrap_or(""))
        };
        assert!(
            defines.insert(name.to_string(), int).is_none(),
            "{name} is defined twice in snoo_mpi.h"
        );
    }
    defines
}

#[test]
fn parse_int_reads_c_literals() {
    assert_eq!(parse_int(" 19 "), Some(19));
    assert_eq!(parse_int("(-1)"), Some(-1));
    assert_eq!(parse_int("0x10"), Some(16));
    assert_eq!(parse_int("((SNOO_MPI_Request)0)"), None);
    assert_eq!(parse_int("1L"), None);
    assert_eq!(parse_int(""), None);
}

#[test]
fn every_header_constant_is_a_rust_constant_and_back() {
    let header = header_defines();
    let rust = rust_constants();
    for (name, value) in &header {
        match value {
            Some(v) => assert_eq!(
                rust.get(name.as_str()),
                Some(v),
                "snoo_mpi.h: #define {name} {v}, Rust: {:?}",
                rust.get(name.as_str())
            ),
            None => assert!(
                NOT_INTEGERS.contains(&name.as_str()),
                "snoo_mpi.h: {name} is not an integer literal; read it here or list it in NOT_INTEGERS"
            ),
        }
    }
    for (name, value) in &rust {
        assert_eq!(
            header.get(*name),
            Some(&Some(*value)),
            "Rust: {name} = {value}, snoo_mpi.h: {:?}",
            header.get(*name)
        );
    }
    for name in NOT_INTEGERS {
        assert!(header.contains_key(*name), "snoo_mpi.h lacks {name}");
    }
}

#[test]
fn error_codes_are_0_to_lastcode_each_once() {
    let mut values: Vec<i64> = error_codes().iter().map(|&(_, v)| v).collect();
    values.sort_unstable();
    let expected: Vec<i64> = (0..=i64::from(code::ERR_LASTCODE)).collect();
    assert_eq!(
        values, expected,
        "the error codes must be 0..=ERR_LASTCODE, each once, all listed here"
    );
}

#[test]
fn describe_covers_every_code() {
    let unknown = describe(-1);
    assert_eq!(unknown, "unknown error code");
    let mut seen = BTreeMap::new();
    for c in 0..=code::ERR_LASTCODE {
        let d = describe(c);
        assert_ne!(d, unknown, "code {c} has no description");
        assert!(!d.is_empty() && !d.contains('\0'), "code {c}: {d:?}");
        if let Some(other) = seen.insert(d, c) {
            panic!("codes {other} and {c} have the same description {d:?}");
        }
    }
    for c in [i32::MIN, -1, code::ERR_LASTCODE + 1, i32::MAX] {
        assert_eq!(describe(c), unknown, "code {c}");
    }
    // SNOO_MPI_Error_string gives the same strings, the unknown one outside the range.
    for c in (-2..=code::ERR_LASTCODE + 2).chain([c_int::MIN, c_int::MAX]) {
        // SAFETY: SNOO_MPI_Error_string returns a static NUL-terminated string for every code.
        let s = unsafe { CStr::from_ptr(SNOO_MPI_Error_string(c)) };
        assert_eq!(s.to_str(), Ok(describe(c)), "code {c}");
    }
}

#[test]
fn every_datatype_has_its_c_element_size() {
    for (name, v, _) in datatypes() {
        let dt = c_int::try_from(v).expect("datatypes are ints");
        assert!(type_size(dt).is_ok(), "{name} has no element size");
    }
    assert!(type_size(0).is_err());
}

/// Compiles and runs a C program that prints what the C compiler makes of the header.
fn c_view(defines: &BTreeMap<String, Option<i64>>) -> BTreeMap<String, i64> {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let mut src = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <snoo_mpi.h>\n\
         #define SIZE(k, t) printf(\"%s %zu\\n\", k, sizeof(t))\n\
         #define OFFSET(f) printf(\"offset %s %zu\\n\", #f, offsetof(SNOO_MPI_Status, f))\n\
         #define VALUE(n) printf(\"value %s %lld\\n\", #n, (long long)(n))\n\
         int main(void) {\n\
         SIZE(\"size SNOO_MPI_Status\", SNOO_MPI_Status);\n\
         printf(\"align SNOO_MPI_Status %zu\\n\", _Alignof(SNOO_MPI_Status));\n\
         OFFSET(SNOO_MPI_SOURCE);\nOFFSET(SNOO_MPI_TAG);\nOFFSET(SNOO_MPI_ERROR);\nOFFSET(count_bytes);\n\
         SIZE(\"size SNOO_MPI_Request\", SNOO_MPI_Request);\n\
         SIZE(\"size SNOO_MPI_Datatype\", SNOO_MPI_Datatype);\n\
         SIZE(\"size SNOO_MPI_Comm\", SNOO_MPI_Comm);\n\
         VALUE(SNOO_MPI_REQUEST_NULL);\n\
         printf(\"value STATUS_IGNORE_IS_NULL %d\\n\", SNOO_MPI_STATUS_IGNORE == NULL);\n",
    );
    for name in defines.iter().filter(|(_, v)| v.is_some()).map(|(n, _)| n) {
        src.push_str(&format!("VALUE({name});\n"));
    }
    for (name, _, c_type) in datatypes() {
        src.push_str(&format!("SIZE(\"element {name}\", {c_type});\n"));
    }
    src.push_str("return 0;\n}\n");

    let dir = std::env::temp_dir().join(format!("snoo-capi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, exe) = (dir.join("view.c"), dir.join("view"));
    std::fs::write(&c, src).unwrap();
    let gcc = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("gcc is installed");
    assert!(
        gcc.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (key, n) = l.rsplit_once(' ').unwrap();
            (key.to_string(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn c_compiler_agrees() {
    let defines = header_defines();
    let c = c_view(&defines);
    let get = |k: &str| {
        *c.get(k)
            .unwrap_or_else(|| panic!("no {k:?} from the C program"))
    };
    let us = |n: usize| i64::try_from(n).unwrap();

    // SNOO_MPI_Status is CStatus.
    assert_eq!(
        get("size SNOO_MPI_Status"),
        us(size_of::<CStatus>()),
        "sizeof(SNOO_MPI_Status)"
    );
    assert_eq!(
        get("align SNOO_MPI_Status"),
        us(align_of::<CStatus>()),
        "_Alignof(SNOO_MPI_Status)"
    );
    assert_eq!(
        get("offset SNOO_MPI_SOURCE"),
        us(offset_of!(CStatus, source))
    );
    assert_eq!(get("offset SNOO_MPI_TAG"), us(offset_of!(CStatus, tag)));
    assert_eq!(get("offset SNOO_MPI_ERROR"), us(offset_of!(CStatus, error)));
    assert_eq!(
        get("offset count_bytes"),
        us(offset_of!(CStatus, count_bytes))
    );
    // The handle types, as the entry points take them (`*mut i64`, `c_int`).
    assert_eq!(get("size SNOO_MPI_Request"), us(size_of::<i64>()));
    assert_eq!(get("size SNOO_MPI_Datatype"), us(size_of::<c_int>()));
    assert_eq!(get("size SNOO_MPI_Comm"), us(size_of::<c_int>()));
    assert_eq!(get("value SNOO_MPI_REQUEST_NULL"), abi::REQUEST_NULL);
    assert_eq!(get("value STATUS_IGNORE_IS_NULL"), 1);
    // The compiler reads each integer define as the test's parser does.
    for (name, v) in &defines {
        if let Some(v) = v {
            assert_eq!(get(&format!("value {name}")), *v, "{name}");
        }
    }
    // One element of each datatype is as large in C as the library counts it.
    for (name, v, c_type) in datatypes() {
        let size = type_size(c_int::try_from(v).unwrap()).unwrap();
        assert_eq!(
            get(&format!("element {name}")),
            us(size),
            "{name}: sizeof({c_type})"
        );
    }
}
