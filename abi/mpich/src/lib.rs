//! `libmpi.so.12`: SNOO's MPI library in MPICH's binary interface, the one Debian's MPI programs
//! link (as `libmpich.so.12`). Handles are `int`s in MPICH's format: predefined objects have
//! MPICH's fixed values (from its `mpi.h`); objects the program creates get
//! `0xC0000000 | kind << 26 | id`, a form MPICH's own predefined handles never take.
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
use snoo_mpi_impl::request::Status as Neutral;
use std::ffi::{c_int, c_void};

/// MPI_Comm.
pub type Comm = c_int;
/// MPI_Group.
pub type Group = c_int;
/// MPI_Datatype.
pub type Datatype = c_int;
/// MPI_Request.
pub type Request = c_int;
/// MPI_Op.
pub type Op = c_int;
/// MPI_Errhandler.
pub type Errhandler = c_int;
/// MPI_Info.
pub type Info = c_int;
/// MPI_Message.
pub type Message = c_int;

/// MPICH's MPI_Status.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    count_lo: c_int,
    count_hi_and_cancelled: c_int,
    source: c_int,
    tag: c_int,
    error: c_int,
}

/// MPICH's interface.
pub struct Mpich;

// Object kinds in MPICH's handle format (bits 26..29).
const COMM: u32 = 0x1;
const GROUP: u32 = 0x2;
const DATATYPE: u32 = 0x3;
const ERRHANDLER: u32 = 0x5;
const OP: u32 = 0x6;
const MESSAGE: u32 = 0xd;
const INFO: u32 = 0x7;
const REQUEST: u32 = 0xb;

/// The handle of a created object.
fn user(kind: u32, id: Id) -> c_int {
    (0xC000_0000 | kind << 26 | id.raw()) as c_int
}

/// The object id of a created object's handle.
fn user_id(kind: u32, h: c_int) -> Option<Id> {
    let h = h as u32;
    (h & 0xFC00_0000 == 0xC000_0000 | kind << 26)
        .then(|| Id::from_raw(h & 0x03FF_FFFF))
        .flatten()
}

/// MPICH's predefined datatypes, by [`Basic`].
const TYPES: [(Basic, u32); 62] = {
    use Basic::*;
    [
        (Char, 0x4c000101),
        (SignedChar, 0x4c000118),
        (UnsignedChar, 0x4c000102),
        (Byte, 0x4c00010d),
        (WChar, 0x4c00040e),
        (Short, 0x4c000203),
        (UnsignedShort, 0x4c000204),
        (Int, 0x4c000405),
        (Unsigned, 0x4c000406),
        (Long, 0x4c000807),
        (UnsignedLong, 0x4c000808),
        (LongLong, 0x4c000809),
        (UnsignedLongLong, 0x4c000819),
        (Float, 0x4c00040a),
        (Double, 0x4c00080b),
        (LongDouble, 0x4c00100c),
        (Int8, 0x4c000137),
        (Int16, 0x4c000238),
        (Int32, 0x4c000439),
        (Int64, 0x4c00083a),
        (Uint8, 0x4c00013b),
        (Uint16, 0x4c00023c),
        (Uint32, 0x4c00043d),
        (Uint64, 0x4c00083e),
        (CBool, 0x4c00013f),
        (CxxBool, 0x4c000133),
        (FloatComplex, 0x4c000840),
        (DoubleComplex, 0x4c001041),
        (LongDoubleComplex, 0x4c002042),
        (CxxFloatComplex, 0x4c000834),
        (CxxDoubleComplex, 0x4c001035),
        (CxxLongDoubleComplex, 0x4c002036),
        (Aint, 0x4c000843),
        (Offset, 0x4c000844),
        (Count, 0x4c000845),
        (Packed, 0x4c00010f),
        (Character, 0x4c00011a),
        (Logical, 0x4c00041d),
        (Integer, 0x4c00041b),
        (Real, 0x4c00041c),
        (DoublePrecision, 0x4c00081f),
        (Complex, 0x4c00081e),
        (DoubleComplexF, 0x4c001022),
        (Integer1, 0x4c00012d),
        (Integer2, 0x4c00022f),
        (Integer4, 0x4c000430),
        (Integer8, 0x4c000831),
        (Real4, 0x4c000427),
        (Real8, 0x4c000829),
        (Real16, 0x4c00102b),
        (Complex8, 0x4c000828),
        (Complex16, 0x4c00102a),
        (Complex32, 0x4c00202c),
        (FloatInt, 0x8c000000),
        (DoubleInt, 0x8c000001),
        (LongInt, 0x8c000002),
        (TwoInt, 0x4c000816),
        (ShortInt, 0x8c000003),
        (LongDoubleInt, 0x8c000004),
        (TwoReal, 0x4c000821),
        (TwoDoublePrecision, 0x4c001023),
        (TwoInteger, 0x4c000820),
    ]
};

/// Builtin datatype handles (0x4c00ssnn) by their low byte: index into [`TYPES`] + 1.
const BY_LOW_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < TYPES.len() {
        let h = TYPES[i].1;
        if h >> 24 == 0x4c {
            t[(h & 0xff) as usize] = i as u8 + 1;
        }
        i += 1;
    }
    t
};

/// MPICH's error classes, by [`Class`].
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
        Root => 7,
        Group => 8,
        Op => 9,
        Topology => 10,
        Dims => 11,
        Arg => 12,
        Unknown => 13,
        Truncate => 14,
        Other => 15,
        Intern => 16,
        InStatus => 17,
        Pending => 18,
        Request => 19,
        Info => 28,
        InfoKey => 29,
        InfoValue => 30,
        InfoNokey => 31,
        NoMem => 34,
        UnsupportedOperation => 44,
        Keyval => 48,
        ProcAborted => 76,
        // MPICH 4.0 has no MPI_ERR_ERRHANDLER; an invalid handler is an invalid argument there.
        Errhandler => 12,
    }
}

impl Abi for Mpich {
    type Comm = Comm;
    type Group = Group;
    type Datatype = Datatype;
    type Request = Request;
    type Op = Op;
    type Errhandler = Errhandler;
    type Status = Status;
    type Info = Info;
    type Message = Message;

    const COMM_NULL: Comm = 0x0400_0000;
    const GROUP_NULL: Group = 0x0800_0000;
    const DATATYPE_NULL: Datatype = 0x0c00_0000;
    const REQUEST_NULL: Request = 0x2c00_0000;
    const OP_NULL: Op = 0x1800_0000;
    const MESSAGE_NULL: Message = 0x2c00_0000;
    const MESSAGE_NO_PROC: Message = 0x6c00_0000;
    const ERRHANDLER_NULL: Errhandler = 0x1400_0000;
    const INFO_NULL: Info = 0x1c00_0000;

    fn comm(id: Id) -> Comm {
        match id {
            i if i == snoo_mpi_impl::state::comm::WORLD => 0x4400_0000,
            i if i == snoo_mpi_impl::state::comm::SELF => 0x4400_0001,
            i => user(COMM, i),
        }
    }

    #[inline]
    fn comm_id(h: Comm) -> Option<Id> {
        match h {
            0x4400_0000 => Some(snoo_mpi_impl::state::comm::WORLD),
            0x4400_0001 => Some(snoo_mpi_impl::state::comm::SELF),
            h => user_id(COMM, h),
        }
    }

    fn group(id: Id) -> Group {
        if id == snoo_mpi_impl::state::GROUP_EMPTY {
            0x4800_0000
        } else {
            user(GROUP, id)
        }
    }

    fn group_id(h: Group) -> Option<Id> {
        match h {
            0x4800_0000 => Some(snoo_mpi_impl::state::GROUP_EMPTY),
            h => user_id(GROUP, h),
        }
    }

    fn datatype(id: Id) -> Datatype {
        match TYPES.get(id.raw() as usize) {
            Some(&(b, h)) if snoo_mpi_impl::state::basic_id(b) == id => h as c_int,
            _ => user(DATATYPE, id),
        }
    }

    #[inline]
    fn datatype_id(h: Datatype) -> Option<Id> {
        let u = h as u32;
        if u >> 24 == 0x4c {
            let i = BY_LOW_BYTE[(u & 0xff) as usize];
            return (i != 0 && TYPES[i as usize - 1].1 == u)
                .then(|| snoo_mpi_impl::state::basic_id(TYPES[i as usize - 1].0));
        }
        if (0x8c00_0000..=0x8c00_0004).contains(&u) {
            let b = [
                Basic::FloatInt,
                Basic::DoubleInt,
                Basic::LongInt,
                Basic::ShortInt,
                Basic::LongDoubleInt,
            ][(u - 0x8c00_0000) as usize];
            return Some(snoo_mpi_impl::state::basic_id(b));
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
        if (id.raw() as usize) < c::reduction::PREDEFINED.len() {
            0x5800_0001 + id.raw() as c_int
        } else {
            user(OP, id)
        }
    }

    fn op_id(h: Op) -> Option<Id> {
        let u = h as u32;
        if (0x5800_0001..0x5800_0001 + c::reduction::PREDEFINED.len() as u32).contains(&u) {
            return Id::from_raw(u - 0x5800_0001);
        }
        user_id(OP, h)
    }

    fn errhandler(id: Id) -> Errhandler {
        match id.raw() {
            0 => 0x5400_0000,
            1 => 0x5400_0001,
            2 => 0x5400_0003,
            _ => user(ERRHANDLER, id),
        }
    }

    fn errhandler_id(h: Errhandler) -> Option<Id> {
        match h {
            0x5400_0000 => Some(snoo_mpi_impl::state::errh::FATAL),
            0x5400_0001 => Some(snoo_mpi_impl::state::errh::RETURN),
            0x5400_0003 => Some(snoo_mpi_impl::state::errh::ABORT),
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
        if id == snoo_mpi_impl::state::INFO_ENV {
            0x5c00_0001
        } else {
            user(INFO, id)
        }
    }

    fn info_id(h: Info) -> Option<Id> {
        match h {
            0x5c00_0001 => Some(snoo_mpi_impl::state::INFO_ENV),
            h => user_id(INFO, h),
        }
    }

    fn code(class: Class) -> c_int {
        code_of(class)
    }

    fn class(code: c_int) -> Option<Class> {
        Class::ALL
            .iter()
            .copied()
            .find(|&c| code_of(c) == code && c != Class::Errhandler)
    }

    const ANY_SOURCE: c_int = -2;
    const ANY_TAG: c_int = -1;
    const PROC_NULL: c_int = -1;
    const ROOT: c_int = -3;
    const UNDEFINED: c_int = -32766;
    const IN_PLACE: usize = usize::MAX;
    const STATUS_IGNORE: usize = 1;
    const STATUSES_IGNORE: usize = 1;
    const COMPARE: [c_int; 4] = [0, 1, 2, 3];
    const THREAD: [c_int; 4] = [0, 1, 2, 3];
    const COMM_TYPE_SHARED: c_int = 1;
    const ORDER: [c_int; 2] = [56, 57];
    const CART: c_int = 2;
    const ATTR_KEYS: [c_int; 7] = [
        0x6440_0001,
        0x6440_0003,
        0x6440_0005,
        0x6440_0007,
        0x6440_0009,
        0x6440_000b,
        0x6440_000d,
    ];
    const VERSION: (c_int, c_int) = (4, 0);
    const BSEND_OVERHEAD: usize = 96;
    const KEYVAL_INVALID: c_int = 0x2400_0000;
    const MAX_PROCESSOR_NAME: usize = 128;
    const MAX_ERROR_STRING: usize = 512;
    const MAX_OBJECT_NAME: usize = 128;
    // MPICH's MPI_MAX_INFO_KEY is 255, the longest key; its key buffers hold one more.
    const MAX_INFO_KEY: usize = 255;
    const MAX_INFO_VAL: usize = 1024;
    const MAX_LIBRARY_VERSION_STRING: usize = 8192;

    unsafe fn write_status(s: *mut Status, st: &Neutral) {
        let count = st.bytes as u64;
        let v = Status {
            count_lo: count as u32 as c_int,
            count_hi_and_cancelled: ((count >> 32) << 1) as c_int | c_int::from(st.cancelled),
            source: c::source_code::<Mpich>(st.source),
            tag: st.tag.unwrap_or(Self::ANY_TAG),
            error: code_of(st.error),
        };
        // SAFETY: the caller guarantees `s` points to a writable MPI_Status.
        unsafe { s.write_unaligned(v) }
    }

    unsafe fn read_status(s: *const Status) -> Neutral {
        // SAFETY: the caller guarantees `s` points to a readable MPI_Status.
        let v = unsafe { s.read_unaligned() };
        let count =
            u64::from(v.count_lo as u32) | ((v.count_hi_and_cancelled as u32 as u64) >> 1) << 32;
        Neutral {
            source: c::source_of::<Mpich>(v.source),
            tag: (v.tag >= 0).then_some(v.tag),
            error: Self::class(v.error).unwrap_or(Class::Other),
            bytes: count as usize,
            cancelled: v.count_hi_and_cancelled & 1 != 0,
        }
    }

    unsafe fn call_op(f: usize, invec: *mut c_void, inout: *mut c_void, len: c_int, dt: Datatype) {
        type UserFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int, *mut Datatype);
        // SAFETY: `f` is an MPI_User_function the program registered (MPI_Op_create).
        let f: UserFn = unsafe { std::mem::transmute::<usize, UserFn>(f) };
        let (mut len, mut dt) = (len, dt);
        // SAFETY: calling the program's function with MPICH's signature.
        unsafe { f(invec, inout, &mut len, &mut dt) }
    }

    unsafe fn call_errhandler(f: usize, comm: Comm, code: c_int) {
        type ErrFn = unsafe extern "C" fn(*mut Comm, *mut c_int);
        // SAFETY: `f` is an MPI_Comm_errhandler_function the program registered.
        let f: ErrFn = unsafe { std::mem::transmute::<usize, ErrFn>(f) };
        let (mut comm, mut code) = (comm, code);
        // SAFETY: calling the program's handler with MPICH's signature (its variadic tail is
        // empty, which the SysV ABI allows).
        unsafe { f(&mut comm, &mut code) }
    }
}

snoo_mpi_impl::export_mpi!(Mpich);

/// The body of every function without an implementation (see `build.rs`).
fn unsupported(name: &'static str) -> c_int {
    c::unsupported::<Mpich>(name)
}

include!(concat!(env!("OUT_DIR"), "/stubs.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_predefined_datatype_maps_both_ways() {
        for (b, h) in TYPES {
            let id = Mpich::datatype_id(h as c_int).unwrap_or_else(|| panic!("{b:?}"));
            assert_eq!(id, snoo_mpi_impl::state::basic_id(b));
            assert_eq!(Mpich::datatype(id), h as c_int, "{b:?}");
        }
        assert_eq!(Mpich::datatype_id(Mpich::DATATYPE_NULL), None);
        assert_eq!(
            Mpich::datatype_id(0x4c00_0405 + 0x100),
            None,
            "a size that does not match"
        );
    }

    #[test]
    fn created_handles_never_look_like_predefined_ones() {
        let id = Id::from_raw(0x12_3456).unwrap();
        for kind in [COMM, GROUP, DATATYPE, ERRHANDLER, OP, REQUEST, MESSAGE] {
            let h = user(kind, id);
            assert_eq!(user_id(kind, h), Some(id));
            for other in [COMM, GROUP, DATATYPE, ERRHANDLER, OP, REQUEST, MESSAGE] {
                if other != kind {
                    assert_eq!(user_id(other, h), None);
                }
            }
        }
        assert_eq!(Mpich::comm_id(Mpich::COMM_NULL), None);
        assert_eq!(Mpich::request_id(Mpich::REQUEST_NULL), None);
    }

    #[test]
    fn status_round_trips_large_counts_and_cancel() {
        let mut s = Status::default();
        let st = Neutral {
            source: snoo_mpi_impl::request::Src::Rank(3),
            tag: Some(9),
            error: Class::Success,
            bytes: (5 << 32) + 7,
            cancelled: true,
        };
        // SAFETY: `s` is a local Status.
        let back = unsafe {
            Mpich::write_status(&mut s, &st);
            Mpich::read_status(&s)
        };
        assert_eq!(back, st);
    }
}
