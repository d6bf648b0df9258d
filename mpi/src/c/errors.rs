//! Error codes and their texts.

use super::{anytime, env::write_c_string, last_detail, put, Abi};
use crate::error::Class;
use std::ffi::{c_char, c_int};

/// MPI_Error_string: the class's text, and the detail of this thread's last error when `code` is
/// that error's (`cap`: the face's MPI_MAX_ERROR_STRING).
pub fn error_string<A: Abi>(code: c_int, s: *mut c_char, len: *mut c_int) -> c_int {
    let cap = A::MAX_ERROR_STRING;
    anytime::<A>("MPI_Error_string", || {
        let text = match (A::class(code), last_detail(code)) {
            (Some(Class::Success), _) => Class::Success.text().to_string(),
            (Some(c), Some(d)) => format!("{}, {d}", c.text()),
            (Some(c), None) => c.text().to_string(),
            (None, _) => format!("Unknown error code {code}"),
        };
        write_c_string(s, cap, &text, len)
    })
}

/// MPI_Error_class: codes are classes.
pub fn error_class<A: Abi>(code: c_int, class: *mut c_int) -> c_int {
    anytime::<A>("MPI_Error_class", || {
        let c = A::class(code).ok_or_else(|| {
            crate::error::MpiError::new(Class::Arg, format!("unknown error code {code}"))
        })?;
        put(class, A::code(c), "class")
    })
}
