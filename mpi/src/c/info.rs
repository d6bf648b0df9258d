//! Info objects: MPI_Info_create … MPI_Info_free, MPI_Info_create_env, and the communicator's
//! MPI_Comm_set_info / MPI_Comm_get_info (SNOO reads no hints: set checks and ignores, get
//! returns an empty info).

use super::{need, out, put, run, Abi};
use crate::error::{err, Class, MpiError, MpiResult};
use crate::info::{check_key, Info};
use crate::state::{Mpi, INFO_ENV};
use std::ffi::{c_char, c_int, CStr};

/// The object `h` names: MPI_ERR_INFO for a freed or a forged handle, MPI_ERR_ARG for
/// MPI_INFO_NULL (as MPICH).
fn info<A: Abi>(m: &mut Mpi, h: A::Info) -> MpiResult<&mut Info> {
    if h == A::INFO_NULL {
        return err(Class::Arg, "MPI_INFO_NULL is not an info object");
    }
    let id = need(A::info_id(h), Class::Info, "info")?;
    m.infos
        .get_mut(id)
        .ok_or_else(|| MpiError::new(Class::Info, "invalid info (freed or not an info)"))
}

/// A key or value argument: the bytes of its C string.
fn c_bytes<'a>(p: *const c_char, class: Class, what: &str) -> MpiResult<&'a [u8]> {
    if p.is_null() {
        return err(class, format!("NULL info {what}"));
    }
    // SAFETY: non-NULL: the program's NUL-terminated string, valid for the call.
    Ok(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Copies `s` and a NUL into `buf`, at most `room` bytes in all (`room` ≥ 1).
fn write_bytes(buf: *mut c_char, room: usize, s: &[u8]) -> MpiResult<()> {
    if buf.is_null() {
        return err(Class::Arg, "NULL string buffer");
    }
    let n = s.len().min(room - 1);
    // SAFETY: the program's buffer holds `room` bytes (its stated length, or the MPI_MAX_*
    // constant of the call); n + 1 <= room.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
    Ok(())
}

/// Stores a new info object and writes its handle.
fn new_info<A: Abi>(m: &mut Mpi, i: Info, h: *mut A::Info) -> MpiResult<()> {
    let slot = out(h, "info")?;
    let id = m
        .infos
        .insert(i)
        .ok_or_else(|| MpiError::new(Class::Intern, "too many info objects (65536)"))?;
    *slot = A::info(id);
    Ok(())
}

/// MPI_Info_create.
pub fn info_create<A: Abi>(h: *mut A::Info) -> c_int {
    run::<A>("MPI_Info_create", None, |m| {
        new_info::<A>(m, Info::default(), h)
    })
}

/// MPI_Info_create_env: a copy of MPI_INFO_ENV (the arguments are not read).
pub fn info_create_env<A: Abi>(_argc: c_int, _argv: *mut *mut c_char, h: *mut A::Info) -> c_int {
    run::<A>("MPI_Info_create_env", None, |m| {
        let env = m.infos.get(INFO_ENV).cloned().unwrap_or_default();
        new_info::<A>(m, env, h)
    })
}

/// MPI_Info_dup.
pub fn info_dup<A: Abi>(h: A::Info, new: *mut A::Info) -> c_int {
    run::<A>("MPI_Info_dup", None, |m| {
        let copy = info::<A>(m, h)?.clone();
        new_info::<A>(m, copy, new)
    })
}

/// MPI_Info_free: the handle becomes MPI_INFO_NULL; MPI_INFO_ENV cannot be freed.
pub fn info_free<A: Abi>(h: *mut A::Info) -> c_int {
    run::<A>("MPI_Info_free", None, |m| {
        let slot = out(h, "info")?;
        let id = need(A::info_id(*slot), Class::Info, "info")?;
        if m.infos.is_predefined(id) {
            return err(Class::Info, "MPI_INFO_ENV cannot be freed");
        }
        m.infos
            .remove(id)
            .ok_or_else(|| MpiError::new(Class::Info, "invalid info (freed or not an info)"))?;
        *slot = A::INFO_NULL;
        Ok(())
    })
}

/// MPI_Info_set.
pub fn info_set<A: Abi>(h: A::Info, key: *const c_char, value: *const c_char) -> c_int {
    run::<A>("MPI_Info_set", None, |m| {
        let k = c_bytes(key, Class::InfoKey, "key")?;
        let v = c_bytes(value, Class::InfoValue, "value")?;
        info::<A>(m, h)?.set(k, v, A::MAX_INFO_KEY, A::MAX_INFO_VAL)
    })
}

/// MPI_Info_delete: MPI_ERR_INFO_NOKEY if the key has no value.
pub fn info_delete<A: Abi>(h: A::Info, key: *const c_char) -> c_int {
    run::<A>("MPI_Info_delete", None, |m| {
        let k = c_bytes(key, Class::InfoKey, "key")?;
        info::<A>(m, h)?.delete(k, A::MAX_INFO_KEY)
    })
}

/// The value of `key` (read and checked) in info `h`, for the MPI_Info_get calls.
fn value_of<A: Abi>(m: &mut Mpi, h: A::Info, key: *const c_char) -> MpiResult<Option<&[u8]>> {
    let k = c_bytes(key, Class::InfoKey, "key")?;
    check_key(k, A::MAX_INFO_KEY)?;
    Ok(info::<A>(m, h)?.get(k))
}

/// MPI_Info_get: at most `valuelen` bytes of the value, and a NUL.
pub fn info_get<A: Abi>(
    h: A::Info,
    key: *const c_char,
    valuelen: c_int,
    value: *mut c_char,
    flag: *mut c_int,
) -> c_int {
    run::<A>("MPI_Info_get", None, |m| {
        let room = usize::try_from(valuelen)
            .map_err(|_| MpiError::new(Class::Arg, format!("negative valuelen {valuelen}")))?;
        let f = out(flag, "flag")?;
        let v = value_of::<A>(m, h, key)?;
        if let Some(v) = v {
            write_bytes(value, room + 1, v)?;
        }
        *f = c_int::from(v.is_some());
        Ok(())
    })
}

/// MPI_Info_get_valuelen: the value's length without its NUL.
pub fn info_get_valuelen<A: Abi>(
    h: A::Info,
    key: *const c_char,
    valuelen: *mut c_int,
    flag: *mut c_int,
) -> c_int {
    run::<A>("MPI_Info_get_valuelen", None, |m| {
        let f = out(flag, "flag")?;
        let len = out(valuelen, "valuelen")?;
        let v = value_of::<A>(m, h, key)?;
        if let Some(v) = v {
            *len = v.len() as c_int;
        }
        *f = c_int::from(v.is_some());
        Ok(())
    })
}

/// MPI_Info_get_string (MPI 4.0): `*buflen` is the buffer's size on entry (0: only ask the
/// length) and the value's size with its NUL on return.
pub fn info_get_string<A: Abi>(
    h: A::Info,
    key: *const c_char,
    buflen: *mut c_int,
    value: *mut c_char,
    flag: *mut c_int,
) -> c_int {
    run::<A>("MPI_Info_get_string", None, |m| {
        let f = out(flag, "flag")?;
        let len = out(buflen, "buflen")?;
        let room = usize::try_from(*len)
            .map_err(|_| MpiError::new(Class::Arg, format!("negative buflen {}", *len)))?;
        let v = value_of::<A>(m, h, key)?;
        if let Some(v) = v {
            if room > 0 {
                write_bytes(value, room, v)?;
            }
            *len = v.len() as c_int + 1;
        }
        *f = c_int::from(v.is_some());
        Ok(())
    })
}

/// MPI_Info_get_nkeys.
pub fn info_get_nkeys<A: Abi>(h: A::Info, nkeys: *mut c_int) -> c_int {
    run::<A>("MPI_Info_get_nkeys", None, |m| {
        let n = info::<A>(m, h)?.len();
        put(nkeys, n as c_int, "nkeys")
    })
}

/// MPI_Info_get_nthkey: the key (at most the face's MPI_MAX_INFO_KEY bytes, and a NUL).
pub fn info_get_nthkey<A: Abi>(h: A::Info, n: c_int, key: *mut c_char) -> c_int {
    run::<A>("MPI_Info_get_nthkey", None, |m| {
        let i = info::<A>(m, h)?;
        let n = usize::try_from(n)
            .map_err(|_| MpiError::new(Class::Arg, format!("negative key number {n}")))?;
        write_bytes(key, A::MAX_INFO_KEY + 1, i.nth_key(n)?)
    })
}

/// MPI_Comm_set_info: the info is checked, its hints ignored (SNOO takes none yet).
pub fn comm_set_info<A: Abi>(comm: A::Comm, h: A::Info) -> c_int {
    run::<A>("MPI_Comm_set_info", Some(comm), |m| {
        m.comm(A::comm_id(comm))?;
        info::<A>(m, h).map(|_| ())
    })
}

/// MPI_Comm_get_info: a new, empty info (no hint is in use).
pub fn comm_get_info<A: Abi>(comm: A::Comm, used: *mut A::Info) -> c_int {
    run::<A>("MPI_Comm_get_info", Some(comm), |m| {
        m.comm(A::comm_id(comm))?;
        new_info::<A>(m, Info::default(), used)
    })
}
