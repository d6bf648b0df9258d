//! `libmpi_abi.so.1`: SNOO's MPI library in the MPI 5.0 standard ABI (the interface of MPICH 5's
//! `mpicc_abi` and Open MPI 6), with its own header (`include/mpi.h`) and the `snoo-mpicc`
//! wrapper. Handles are pointer-sized: predefined objects have the standard's small constants;
//! objects the program creates get `0x1000_0000 + (kind << 24 | id)`, which no predefined handle
//! takes and which fits an `int` (so the `_toint`/`_fromint` and Fortran conversions are casts).
//!
//! All behaviour is `snoo-mpi-impl`'s; this crate says how handles, codes and statuses look.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![allow(non_snake_case)]

mod convert;

use snoo_mpi_impl::basic::Basic;
use snoo_mpi_impl::c::{self, Abi};
use snoo_mpi_impl::error::Class;
use snoo_mpi_impl::handle::Id;
use snoo_mpi_impl::op::Predefined;
use snoo_mpi_impl::request::Status as Neutral;
use snoo_mpi_impl::state;
use std::ffi::{c_int, c_void};

/// MPI_Comm (a pointer-sized handle).
pub type Comm = usize;
/// MPI_Group.
pub type Group = usize;
/// MPI_Datatype.
pub type Datatype = usize;
/// MPI_Request.
pub type Request = usize;
/// MPI_Op.
pub type Op = usize;
/// MPI_Errhandler.
pub type Errhandler = usize;
/// MPI_Info.
pub type Info = usize;
/// MPI_Message.
pub type Message = usize;

/// The standard's MPI_Status: three public fields and five for the library (here: the byte
/// count's low and high halves, and the cancelled flag).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    source: c_int,
    tag: c_int,
    error: c_int,
    internal: [c_int; 5],
}

/// The MPI 5.0 standard interface.
pub struct Standard;

// Kinds of created objects.
const COMM: usize = 1;
const GROUP: usize = 2;
const DATATYPE: usize = 3;
const MESSAGE: usize = 7;
const INFO: usize = 8;
const REQUEST: usize = 4;
const OP: usize = 5;
const ERRHANDLER: usize = 6;
const USER_BASE: usize = 0x1000_0000;

fn user(kind: usize, id: Id) -> usize {
    USER_BASE + (kind << 24 | id.raw() as usize)
}

fn user_id(kind: usize, h: usize) -> Option<Id> {
    let v = h.checked_sub(USER_BASE)?;
    (v >> 24 == kind)
        .then(|| Id::from_raw((v & 0xff_ffff) as u32))
        .flatten()
}

/// The standard's predefined datatypes, by [`Basic`].
const TYPES: [(Basic, usize); 62] = {
    use Basic::*;
    [
        (Char, 0x243),
        (SignedChar, 0x244),
        (UnsignedChar, 0x245),
        (Byte, 0x247),
        (WChar, 0x23c),
        (Short, 0x208),
        (UnsignedShort, 0x20c),
        (Int, 0x209),
        (Unsigned, 0x20d),
        (Long, 0x20a),
        (UnsignedLong, 0x20e),
        (LongLong, 0x20b),
        (UnsignedLongLong, 0x20f),
        (Float, 0x210),
        (Double, 0x214),
        (LongDouble, 0x220),
        (Int8, 0x240),
        (Int16, 0x248),
        (Int32, 0x250),
        (Int64, 0x258),
        (Uint8, 0x241),
        (Uint16, 0x249),
        (Uint32, 0x251),
        (Uint64, 0x259),
        (CBool, 0x238),
        (CxxBool, 0x239),
        (FloatComplex, 0x212),
        (DoubleComplex, 0x216),
        (LongDoubleComplex, 0x224),
        (CxxFloatComplex, 0x213),
        (CxxDoubleComplex, 0x217),
        (CxxLongDoubleComplex, 0x225),
        (Aint, 0x201),
        (Offset, 0x203),
        (Count, 0x202),
        (Packed, 0x207),
        (Character, 0x21e),
        (Logical, 0x218),
        (Integer, 0x219),
        (Real, 0x21a),
        (DoublePrecision, 0x21c),
        (Complex, 0x21b),
        (DoubleComplexF, 0x21d),
        (Integer1, 0x2c1),
        (Integer2, 0x2c9),
        (Integer4, 0x2d1),
        (Integer8, 0x2d9),
        (Real4, 0x2d2),
        (Real8, 0x2da),
        (Real16, 0x2e2),
        (Complex8, 0x2db),
        (Complex16, 0x2e3),
        (Complex32, 0x2eb),
        (FloatInt, 0x228),
        (DoubleInt, 0x229),
        (LongInt, 0x22a),
        (TwoInt, 0x22b),
        (ShortInt, 0x22c),
        (LongDoubleInt, 0x22d),
        (TwoReal, 0x230),
        (TwoDoublePrecision, 0x231),
        (TwoInteger, 0x232),
    ]
};

/// Datatype handles 0x200..0x300 by their low byte: index into [`TYPES`] + 1.
const BY_LOW_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < TYPES.len() {
        t[TYPES[i].1 & 0xff] = i as u8 + 1;
        i += 1;
    }
    t
};

/// The predefined operations' handles, in [`Predefined::ALL`] order.
const OPS: [usize; 14] = [
    0x23, 0x22, 0x21, 0x24, 0x30, 0x28, 0x31, 0x29, 0x32, 0x2a, 0x38, 0x39, 0x3c, 0x3d,
];

/// The standard's error classes, by [`Class`].
fn code_of(c: Class) -> c_int {
    use Class::*;
    match c {
        Success => 0,
        Buffer => 1,
        Count => 2,
        Type => 3,
        Tag => 4,
        Comm => 5,
        Rank => 6,
        Request => 7,
        Root => 8,
        Group => 9,
        Op => 10,
        Topology => 11,
        Dims => 12,
        Arg => 13,
        Unknown => 14,
        Truncate => 15,
        Other => 16,
        Intern => 17,
        Pending => 18,
        InStatus => 19,
        InfoKey => 31,
        InfoNokey => 32,
        InfoValue => 33,
        Info => 34,
        Keyval => 36,
        NoMem => 39,
        UnsupportedOperation => 55,
        ProcAborted => 58,
        Errhandler => 61,
    }
}

impl Abi for Standard {
    type Comm = Comm;
    type Group = Group;
    type Datatype = Datatype;
    type Request = Request;
    type Op = Op;
    type Errhandler = Errhandler;
    type Status = Status;
    type Info = Info;
    type Message = Message;

    const COMM_NULL: Comm = 0x100;
    const GROUP_NULL: Group = 0x108;
    const DATATYPE_NULL: Datatype = 0x200;
    const REQUEST_NULL: Request = 0x180;
    const OP_NULL: Op = 0x20;
    const MESSAGE_NULL: Message = 0x128;
    const MESSAGE_NO_PROC: Message = 0x129;
    const ERRHANDLER_NULL: Errhandler = 0x140;
    const INFO_NULL: Info = 0x130;

    fn comm(id: Id) -> Comm {
        match id {
            i if i == state::comm::WORLD => 0x101,
            i if i == state::comm::SELF => 0x102,
            i => user(COMM, i),
        }
    }

    #[inline]
    fn comm_id(h: Comm) -> Option<Id> {
        match h {
            0x101 => Some(state::comm::WORLD),
            0x102 => Some(state::comm::SELF),
            h => user_id(COMM, h),
        }
    }

    fn group(id: Id) -> Group {
        if id == state::GROUP_EMPTY {
            0x109
        } else {
            user(GROUP, id)
        }
    }

    fn group_id(h: Group) -> Option<Id> {
        match h {
            0x109 => Some(state::GROUP_EMPTY),
            h => user_id(GROUP, h),
        }
    }

    fn datatype(id: Id) -> Datatype {
        match TYPES.get(id.raw() as usize) {
            Some(&(b, h)) if state::basic_id(b) == id => h,
            _ => user(DATATYPE, id),
        }
    }

    #[inline]
    fn datatype_id(h: Datatype) -> Option<Id> {
        if (0x201..0x300).contains(&h) {
            let i = BY_LOW_BYTE[h & 0xff];
            return (i != 0 && TYPES[i as usize - 1].1 == h)
                .then(|| state::basic_id(TYPES[i as usize - 1].0));
        }
        user_id(DATATYPE, h)
    }

    fn request(id: Id) -> Request {
        user(REQUEST, id)
    }

    #[inline]
    fn request_id(h: Request) -> Option<Id> {
        user_id(REQUEST, h)
    }

    fn op(id: Id) -> Op {
        match OPS.get(id.raw() as usize) {
            Some(&h) => h,
            None => user(OP, id),
        }
    }

    fn op_id(h: Op) -> Option<Id> {
        match OPS.iter().position(|&o| o == h) {
            Some(i) => Some(state::op_id(Predefined::ALL[i])),
            None => user_id(OP, h),
        }
    }

    fn errhandler(id: Id) -> Errhandler {
        match id.raw() {
            0 => 0x141,
            1 => 0x143,
            2 => 0x142,
            _ => user(ERRHANDLER, id),
        }
    }

    fn errhandler_id(h: Errhandler) -> Option<Id> {
        match h {
            0x141 => Some(state::errh::FATAL),
            0x143 => Some(state::errh::RETURN),
            0x142 => Some(state::errh::ABORT),
            h => user_id(ERRHANDLER, h),
        }
    }

    fn message(id: Id) -> Message {
        user(MESSAGE, id)
    }

    fn message_id(h: Message) -> Option<Id> {
        user_id(MESSAGE, h)
    }

    fn info(id: Id) -> Info {
        if id == state::INFO_ENV {
            0x131
        } else {
            user(INFO, id)
        }
    }

    fn info_id(h: Info) -> Option<Id> {
        match h {
            0x131 => Some(state::INFO_ENV),
            h => user_id(INFO, h),
        }
    }

    fn code(class: Class) -> c_int {
        code_of(class)
    }

    fn class(code: c_int) -> Option<Class> {
        Class::ALL.iter().copied().find(|&c| code_of(c) == code)
    }

    const ANY_SOURCE: c_int = -1;
    const ANY_TAG: c_int = -2;
    const PROC_NULL: c_int = -3;
    const ROOT: c_int = -4;
    const UNDEFINED: c_int = -32766;
    const IN_PLACE: usize = 1;
    const STATUS_IGNORE: usize = 0;
    const STATUSES_IGNORE: usize = 0;
    const COMPARE: [c_int; 4] = [201, 202, 203, 204];
    const THREAD: [c_int; 4] = [0, 1024, 2048, 4096];
    const COMM_TYPE_SHARED: c_int = 221;
    const ORDER: [c_int; 2] = [0xC, 0xF];
    const CART: c_int = 211;
    // TAG_UB, HOST, IO, WTIME_IS_GLOBAL, UNIVERSE_SIZE, LASTUSEDCODE, APPNUM.
    const ATTR_KEYS: [c_int; 7] = [501, 503, 502, 504, 507, 506, 505];
    const VERSION: (c_int, c_int) = (5, 0);
    const BSEND_OVERHEAD: usize = 512;
    const KEYVAL_INVALID: c_int = 0;
    const MAX_PROCESSOR_NAME: usize = 256;
    const MAX_ERROR_STRING: usize = 512;
    const MAX_OBJECT_NAME: usize = 128;
    // The standard's MPI_MAX_INFO_KEY (256) counts the NUL of a key buffer.
    const MAX_INFO_KEY: usize = 255;
    const MAX_INFO_VAL: usize = 1024;
    const MAX_LIBRARY_VERSION_STRING: usize = 8192;

    unsafe fn write_status(s: *mut Status, st: &Neutral) {
        let count = st.bytes as u64;
        let v = Status {
            source: c::source_code::<Standard>(st.source),
            tag: st.tag.unwrap_or(Self::ANY_TAG),
            error: code_of(st.error),
            internal: [
                count as u32 as c_int,
                (count >> 32) as c_int,
                c_int::from(st.cancelled),
                0,
                0,
            ],
        };
        // SAFETY: the caller guarantees `s` points to a writable MPI_Status.
        unsafe { s.write_unaligned(v) }
    }

    unsafe fn read_status(s: *const Status) -> Neutral {
        // SAFETY: the caller guarantees `s` points to a readable MPI_Status.
        let v = unsafe { s.read_unaligned() };
        let count = u64::from(v.internal[0] as u32) | u64::from(v.internal[1] as u32) << 32;
        Neutral {
            source: c::source_of::<Standard>(v.source),
            tag: (v.tag >= 0).then_some(v.tag),
            error: Self::class(v.error).unwrap_or(Class::Other),
            bytes: count as usize,
            cancelled: v.internal[2] != 0,
        }
    }

    unsafe fn call_op(f: usize, invec: *mut c_void, inout: *mut c_void, len: c_int, dt: Datatype) {
        type UserFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int, *mut Datatype);
        // SAFETY: `f` is an MPI_User_function the program registered (MPI_Op_create).
        let f: UserFn = unsafe { std::mem::transmute::<usize, UserFn>(f) };
        let (mut len, mut dt) = (len, dt);
        // SAFETY: calling the program's function with the standard's signature.
        unsafe { f(invec, inout, &mut len, &mut dt) }
    }

    unsafe fn call_errhandler(f: usize, comm: Comm, code: c_int) {
        type ErrFn = unsafe extern "C" fn(*mut Comm, *mut c_int);
        // SAFETY: `f` is an MPI_Comm_errhandler_function the program registered.
        let f: ErrFn = unsafe { std::mem::transmute::<usize, ErrFn>(f) };
        let (mut comm, mut code) = (comm, code);
        // SAFETY: calling the program's handler with the standard's signature (its variadic tail
        // is empty, which the SysV ABI allows).
        unsafe { f(&mut comm, &mut code) }
    }
}

snoo_mpi_impl::export_mpi!(Standard);

/// The body of every function without an implementation (see `build.rs`).
fn unsupported(name: &'static str) -> c_int {
    c::unsupported::<Standard>(name)
}

include!(concat!(env!("OUT_DIR"), "/stubs.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_predefined_handle_maps_both_ways() {
        for (b, h) in TYPES {
            let id = Standard::datatype_id(h).unwrap_or_else(|| panic!("{b:?}"));
            assert_eq!(id, state::basic_id(b));
            assert_eq!(Standard::datatype(id), h, "{b:?}");
        }
        for (i, &h) in OPS.iter().enumerate() {
            let id = Standard::op_id(h).unwrap();
            assert_eq!(id, state::op_id(Predefined::ALL[i]));
            assert_eq!(Standard::op(id), h);
        }
        assert_eq!(Standard::datatype_id(Standard::DATATYPE_NULL), None);
        assert_eq!(Standard::op_id(Standard::OP_NULL), None);
    }

    #[test]
    fn created_handles_fit_an_int_and_keep_their_kind() {
        let id = Id::from_raw(0xff_ffff).unwrap();
        for kind in [COMM, GROUP, DATATYPE, REQUEST, OP, ERRHANDLER, MESSAGE] {
            let h = user(kind, id);
            assert!(h < 1 << 31);
            assert_eq!(user_id(kind, h), Some(id));
            assert_eq!(user_id(kind % 7 + 1, h), None);
        }
    }
}
