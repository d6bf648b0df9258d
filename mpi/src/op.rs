//! The predefined reduction operations (MPI 4.1 §6.9.2) on the predefined datatypes, on raw
//! bytes: `inout[i] = input[i] op inout[i]`, element by element, with buffers that may be
//! unaligned (every element is read with `from_ne_bytes` from a copied chunk).
//!
//! Integer arithmetic wraps (as two's complement C does in MPICH); floating point is IEEE, MAX
//! and MIN being IEEE maxNum/minNum (a NaN loses to a number). The logical operations read
//! nonzero as true and write 1 or 0 in the element's own width.
//!
//! C `long double` (x86 80-bit extended precision, stored in 16 bytes) has no Rust type: MAX,
//! MIN, MINLOC and MAXLOC compare it exactly and copy the winner's bytes, but SUM and PROD (also
//! of `long double _Complex`) are computed in double precision, the operands converted to `f64`
//! and the result back. Values beyond `f64`'s range saturate to infinity or zero.

use crate::basic::{Basic, Num};
use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, BitAnd, BitOr, BitXor, Mul, Sub};

/// A predefined reduction operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Predefined {
    /// MPI_MAX.
    Max,
    /// MPI_MIN.
    Min,
    /// MPI_SUM.
    Sum,
    /// MPI_PROD.
    Prod,
    /// MPI_LAND: logical and.
    Land,
    /// MPI_BAND: bitwise and.
    Band,
    /// MPI_LOR: logical or.
    Lor,
    /// MPI_BOR: bitwise or.
    Bor,
    /// MPI_LXOR: logical exclusive or.
    Lxor,
    /// MPI_BXOR: bitwise exclusive or.
    Bxor,
    /// MPI_MINLOC: the smallest value and its (smallest) index.
    Minloc,
    /// MPI_MAXLOC: the largest value and its (smallest) index.
    Maxloc,
    /// MPI_REPLACE: the input replaces the target (one-sided accumulate).
    Replace,
    /// MPI_NO_OP: the target is left as it is (one-sided accumulate).
    NoOp,
}

impl Predefined {
    /// Every predefined operation, in declaration order.
    pub const ALL: [Predefined; 14] = {
        use Predefined::*;
        [
            Max, Min, Sum, Prod, Land, Band, Lor, Bor, Lxor, Bxor, Minloc, Maxloc, Replace, NoOp,
        ]
    };

    /// The MPI name, e.g. `"MPI_SUM"`.
    pub fn name(self) -> &'static str {
        use Predefined::*;
        match self {
            Max => "MPI_MAX",
            Min => "MPI_MIN",
            Sum => "MPI_SUM",
            Prod => "MPI_PROD",
            Land => "MPI_LAND",
            Band => "MPI_BAND",
            Lor => "MPI_LOR",
            Bor => "MPI_BOR",
            Lxor => "MPI_LXOR",
            Bxor => "MPI_BXOR",
            Minloc => "MPI_MINLOC",
            Maxloc => "MPI_MAXLOC",
            Replace => "MPI_REPLACE",
            NoOp => "MPI_NO_OP",
        }
    }
}

/// Why an operation could not be applied: the operation is not defined for the type, or a
/// buffer is too short for the count. The faces report it as MPI_ERR_OP or MPI_ERR_BUFFER.
#[derive(Debug, Clone, PartialEq)]
pub struct OpError(pub String);

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpError {}

/// The MPI name of a predefined type, for messages.
fn type_name(ty: Basic) -> &'static str {
    use Basic::*;
    match ty {
        Char => "MPI_CHAR",
        SignedChar => "MPI_SIGNED_CHAR",
        UnsignedChar => "MPI_UNSIGNED_CHAR",
        Byte => "MPI_BYTE",
        WChar => "MPI_WCHAR",
        Short => "MPI_SHORT",
        UnsignedShort => "MPI_UNSIGNED_SHORT",
        Int => "MPI_INT",
        Unsigned => "MPI_UNSIGNED",
        Long => "MPI_LONG",
        UnsignedLong => "MPI_UNSIGNED_LONG",
        LongLong => "MPI_LONG_LONG",
        UnsignedLongLong => "MPI_UNSIGNED_LONG_LONG",
        Float => "MPI_FLOAT",
        Double => "MPI_DOUBLE",
        LongDouble => "MPI_LONG_DOUBLE",
        Int8 => "MPI_INT8_T",
        Int16 => "MPI_INT16_T",
        Int32 => "MPI_INT32_T",
        Int64 => "MPI_INT64_T",
        Uint8 => "MPI_UINT8_T",
        Uint16 => "MPI_UINT16_T",
        Uint32 => "MPI_UINT32_T",
        Uint64 => "MPI_UINT64_T",
        CBool => "MPI_C_BOOL",
        CxxBool => "MPI_CXX_BOOL",
        FloatComplex => "MPI_C_FLOAT_COMPLEX",
        DoubleComplex => "MPI_C_DOUBLE_COMPLEX",
        LongDoubleComplex => "MPI_C_LONG_DOUBLE_COMPLEX",
        CxxFloatComplex => "MPI_CXX_FLOAT_COMPLEX",
        CxxDoubleComplex => "MPI_CXX_DOUBLE_COMPLEX",
        CxxLongDoubleComplex => "MPI_CXX_LONG_DOUBLE_COMPLEX",
        Aint => "MPI_AINT",
        Offset => "MPI_OFFSET",
        Count => "MPI_COUNT",
        Packed => "MPI_PACKED",
        Character => "MPI_CHARACTER",
        Logical => "MPI_LOGICAL",
        Integer => "MPI_INTEGER",
        Real => "MPI_REAL",
        DoublePrecision => "MPI_DOUBLE_PRECISION",
        Complex => "MPI_COMPLEX",
        DoubleComplexF => "MPI_DOUBLE_COMPLEX",
        Integer1 => "MPI_INTEGER1",
        Integer2 => "MPI_INTEGER2",
        Integer4 => "MPI_INTEGER4",
        Integer8 => "MPI_INTEGER8",
        Real4 => "MPI_REAL4",
        Real8 => "MPI_REAL8",
        Real16 => "MPI_REAL16",
        Complex8 => "MPI_COMPLEX8",
        Complex16 => "MPI_COMPLEX16",
        Complex32 => "MPI_COMPLEX32",
        FloatInt => "MPI_FLOAT_INT",
        DoubleInt => "MPI_DOUBLE_INT",
        LongInt => "MPI_LONG_INT",
        TwoInt => "MPI_2INT",
        ShortInt => "MPI_SHORT_INT",
        LongDoubleInt => "MPI_LONG_DOUBLE_INT",
        TwoReal => "MPI_2REAL",
        TwoDoublePrecision => "MPI_2DOUBLE_PRECISION",
        TwoInteger => "MPI_2INTEGER",
    }
}

/// The standard's groups of basic types (§6.9.2), pair types aside.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    /// C and Fortran integers (with MPI_AINT, MPI_OFFSET, MPI_COUNT).
    Integer,
    /// C and Fortran floating point.
    Floating,
    /// C, C++ and Fortran complex.
    Complex,
    /// C and C++ bool, Fortran LOGICAL.
    Logical,
    /// MPI_BYTE.
    Byte,
    /// In no group: characters (MPI_CHAR, MPI_WCHAR, MPI_CHARACTER) and MPI_PACKED.
    None,
}

fn group(ty: Basic) -> Group {
    match ty {
        Basic::Byte => Group::Byte,
        // The standard lists no character type among the C integers.
        Basic::Char | Basic::WChar | Basic::Character | Basic::Packed => Group::None,
        _ => match ty.num() {
            Num::I8 | Num::I16 | Num::I32 | Num::I64 => Group::Integer,
            Num::U8 | Num::U16 | Num::U32 | Num::U64 => Group::Integer,
            Num::F32 | Num::F64 | Num::F80 => Group::Floating,
            Num::C32 | Num::C64 | Num::C80 => Group::Complex,
            Num::Bool | Num::Logical => Group::Logical,
            Num::Raw => Group::None,
        },
    }
}

/// Whether `op` is defined for `ty`, by the standard's table: MAX and MIN on integers and
/// floating point; SUM and PROD on integers, floating point and complex; LAND, LOR, LXOR on
/// integers and logicals; BAND, BOR, BXOR on integers and MPI_BYTE; MINLOC and MAXLOC on the
/// pair types only; REPLACE and NO_OP on every type.
pub fn defined(op: Predefined, ty: Basic) -> bool {
    use Predefined::*;
    if matches!(op, Replace | NoOp) {
        return true;
    }
    if ty.pair().is_some() {
        return matches!(op, Minloc | Maxloc);
    }
    let g = group(ty);
    match op {
        Max | Min => matches!(g, Group::Integer | Group::Floating),
        Sum | Prod => matches!(g, Group::Integer | Group::Floating | Group::Complex),
        Land | Lor | Lxor => matches!(g, Group::Integer | Group::Logical),
        Band | Bor | Bxor => matches!(g, Group::Integer | Group::Byte),
        Minloc | Maxloc | Replace | NoOp => false,
    }
}

/// Bytes that `count` elements of `ty` span in a C array: the last element's trailing padding
/// (after a pair's index) is not needed. None on overflow.
fn span(ty: Basic, count: usize) -> Option<usize> {
    if count == 0 {
        return Some(0);
    }
    let last = match ty.pair() {
        Some((_, i)) => ty.index_offset() + i.size(),
        None => ty.size(),
    };
    (count - 1).checked_mul(ty.extent())?.checked_add(last)
}

/// `inout[i] = input[i] op inout[i]` for `count` elements of `ty` laid out as in a C array
/// (element i at `i * ty.extent()`; for a pair type the value at 0 and the index at
/// `ty.index_offset()`). Bytes past the span of `count` elements are not touched, nor is the
/// padding inside pair elements and `long double`s (except by REPLACE, which copies the span).
///
/// Errors (and leaves `inout` as it was) when `op` is not defined for `ty` or either slice is
/// shorter than the span.
pub fn apply(
    op: Predefined,
    ty: Basic,
    count: usize,
    inout: &mut [u8],
    input: &[u8],
) -> Result<(), OpError> {
    use Predefined::*;
    if !defined(op, ty) {
        return Err(OpError(if matches!(op, Minloc | Maxloc) {
            format!(
                "{} needs a pair type such as MPI_DOUBLE_INT, not {}",
                op.name(),
                type_name(ty)
            )
        } else {
            format!("{} is not defined for {}", op.name(), type_name(ty))
        }));
    }
    let need = span(ty, count).ok_or_else(|| {
        OpError(format!(
            "{} on {count} elements of {}: the buffers' length overflows",
            op.name(),
            type_name(ty)
        ))
    })?;
    if inout.len() < need || input.len() < need {
        return Err(OpError(format!(
            "{} on {count} elements of {} needs {need} bytes in each buffer, \
             but inout has {} and input {}",
            op.name(),
            type_name(ty),
            inout.len(),
            input.len()
        )));
    }
    let (io, inp) = (&mut inout[..need], &input[..need]);
    match op {
        NoOp => {}
        Replace => io.copy_from_slice(inp),
        Minloc | Maxloc => pairs(op == Maxloc, ty, count, io, inp),
        _ => match ty.num() {
            Num::I8 => int::<i8>(op, io, inp),
            Num::I16 => int::<i16>(op, io, inp),
            Num::I32 => int::<i32>(op, io, inp),
            Num::I64 => int::<i64>(op, io, inp),
            // Bool and Logical reach here only for the logical operations, MPI_BYTE only for the
            // bitwise ones: both work on the unsigned integer of the element's width.
            Num::U8 | Num::Bool | Num::Raw => int::<u8>(op, io, inp),
            Num::U16 => int::<u16>(op, io, inp),
            Num::U32 | Num::Logical => int::<u32>(op, io, inp),
            Num::U64 => int::<u64>(op, io, inp),
            Num::F32 => float::<f32>(op, io, inp),
            Num::F64 => float::<f64>(op, io, inp),
            Num::F80 => long_double(op, io, inp),
            Num::C32 => complex::<f32>(op, io, inp),
            Num::C64 => complex::<f64>(op, io, inp),
            Num::C80 => complex::<F80>(op, io, inp),
        },
    }
    Ok(())
}

/// One element read from (and written to) the first `N` bytes of a slice.
trait Elem: Copy {
    /// Bytes the element occupies.
    const N: usize;
    fn get(b: &[u8]) -> Self;
    fn put(self, b: &mut [u8]);
}

macro_rules! elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const N: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::N]);
                <$t>::from_ne_bytes(a)
            }
            #[inline(always)]
            fn put(self, b: &mut [u8]) {
                b[..Self::N].copy_from_slice(&self.to_ne_bytes());
            }
        }
    )*};
}
elem!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// `f(input, inout)` into `inout`, element by element over whole chunks: a loop the compiler
/// can vectorize.
#[inline(always)]
fn zip<T: Elem>(io: &mut [u8], inp: &[u8], f: impl Fn(T, T) -> T) {
    for (o, i) in io.chunks_exact_mut(T::N).zip(inp.chunks_exact(T::N)) {
        f(T::get(i), T::get(o)).put(o);
    }
}

trait Int: Elem + Ord + BitAnd<Output = Self> + BitOr<Output = Self> + BitXor<Output = Self> {
    const ZERO: Self;
    const ONE: Self;
    fn wadd(self, o: Self) -> Self;
    fn wmul(self, o: Self) -> Self;
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Int for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)]
            fn wadd(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn wmul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
        }
    )*};
}
int!(i8, i16, i32, i64, u8, u16, u32, u64);

fn int<T: Int>(op: Predefined, io: &mut [u8], inp: &[u8]) {
    use Predefined::*;
    let t = |c: bool| if c { T::ONE } else { T::ZERO };
    match op {
        Max => zip(io, inp, |a: T, b| a.max(b)),
        Min => zip(io, inp, |a: T, b| a.min(b)),
        Sum => zip(io, inp, |a: T, b| a.wadd(b)),
        Prod => zip(io, inp, |a: T, b| a.wmul(b)),
        Land => zip(io, inp, |a: T, b| t(a != T::ZERO && b != T::ZERO)),
        Lor => zip(io, inp, |a: T, b| t(a != T::ZERO || b != T::ZERO)),
        Lxor => zip(io, inp, |a: T, b| t((a != T::ZERO) != (b != T::ZERO))),
        Band => zip(io, inp, |a: T, b| a & b),
        Bor => zip(io, inp, |a: T, b| a | b),
        Bxor => zip(io, inp, |a: T, b| a ^ b),
        Minloc | Maxloc | Replace | NoOp => unreachable!("{} is handled in apply", op.name()),
    }
}

trait Float: Elem + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> {
    fn fmax(self, o: Self) -> Self;
    fn fmin(self, o: Self) -> Self;
}

macro_rules! float {
    ($($t:ty),*) => {$(
        impl Float for $t {
            #[inline(always)]
            fn fmax(self, o: Self) -> Self {
                self.max(o)
            }
            #[inline(always)]
            fn fmin(self, o: Self) -> Self {
                self.min(o)
            }
        }
    )*};
}
float!(f32, f64);

fn float<T: Float>(op: Predefined, io: &mut [u8], inp: &[u8]) {
    use Predefined::*;
    match op {
        Max => zip(io, inp, |a: T, b| a.fmax(b)),
        Min => zip(io, inp, |a: T, b| a.fmin(b)),
        Sum => zip(io, inp, |a: T, b| a + b),
        Prod => zip(io, inp, |a: T, b| a * b),
        _ => unreachable!("{} is not defined on floating point", op.name()),
    }
}

/// Complex numbers: the real part, then the imaginary part, each a `T`.
fn complex<T: Float>(op: Predefined, io: &mut [u8], inp: &[u8]) {
    let n = T::N;
    let parts = |b: &[u8]| (T::get(b), T::get(&b[n..]));
    let chunks = io.chunks_exact_mut(2 * n).zip(inp.chunks_exact(2 * n));
    match op {
        Predefined::Sum => {
            for (o, i) in chunks {
                let ((a, b), (c, d)) = (parts(i), parts(o));
                (a + c).put(o);
                (b + d).put(&mut o[n..]);
            }
        }
        Predefined::Prod => {
            for (o, i) in chunks {
                let ((a, b), (c, d)) = (parts(i), parts(o));
                (a * c - b * d).put(o);
                (a * d + b * c).put(&mut o[n..]);
            }
        }
        _ => unreachable!("{} is not defined on complex", op.name()),
    }
}

/// An x86 80-bit extended precision number (little-endian: 64-bit significand with an explicit
/// integer bit, then sign and 15-bit exponent), in a 16-byte slot whose last 6 bytes are
/// padding, left as they are by `put`. Arithmetic goes through `f64`; comparison is exact.
#[derive(Clone, Copy, Debug)]
struct F80([u8; 10]);

impl Elem for F80 {
    const N: usize = 16;
    fn get(b: &[u8]) -> Self {
        let mut a = [0u8; 10];
        a.copy_from_slice(&b[..10]);
        F80(a)
    }
    fn put(self, b: &mut [u8]) {
        b[..10].copy_from_slice(&self.0);
    }
}

impl F80 {
    /// (negative, biased exponent, significand).
    fn parts(self) -> (bool, u16, u64) {
        let mut m = [0u8; 8];
        m.copy_from_slice(&self.0[..8]);
        let se = u16::from_le_bytes([self.0[8], self.0[9]]);
        (se >> 15 == 1, se & 0x7fff, u64::from_le_bytes(m))
    }

    fn from_parts(negative: bool, exp: u16, mant: u64) -> Self {
        let mut a = [0u8; 10];
        a[..8].copy_from_slice(&mant.to_le_bytes());
        a[8..].copy_from_slice(&(u16::from(negative) << 15 | exp).to_le_bytes());
        F80(a)
    }

    fn is_nan(self) -> bool {
        let (_, e, m) = self.parts();
        e == 0x7fff && m << 1 != 0
    }

    /// The nearest `f64` (round to nearest even, saturating to infinity, and to zero below
    /// half the smallest `f64` denormal). NaN payloads are not kept; an unnormal (exponent
    /// nonzero, integer bit clear, an invalid operand on x87) reads as NaN.
    fn to_f64(self) -> f64 {
        let (neg, exp, mant) = self.parts();
        let mag = if exp == 0x7fff {
            if mant << 1 == 0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        } else if exp == 0 || mant == 0 {
            // Zero, or an 80-bit denormal (below 2^-16382, far below f64's range).
            0.0
        } else if mant >> 63 == 0 {
            f64::NAN
        } else {
            // The value is mant * 2^(e - 63), with 2^e <= value < 2^(e + 1).
            let e = i32::from(exp) - 16383;
            if e > 1023 {
                f64::INFINITY
            } else if e < -1075 {
                0.0
            } else {
                // `mant as f64` rounds to nearest even; the scaling is exact unless the result
                // is an f64 denormal (then rounded a second time).
                let mut x = mant as f64;
                let mut k = e - 63;
                if k < -1022 {
                    x *= pow2(-1022);
                    k += 1022;
                }
                x * pow2(k)
            }
        };
        if neg {
            -mag
        } else {
            mag
        }
    }

    /// The same value (every `f64` is exactly representable); NaNs become quiet NaNs keeping
    /// their payload's high bits.
    fn from_f64(x: f64) -> Self {
        let bits = x.to_bits();
        let neg = bits >> 63 == 1;
        let exp = ((bits >> 52) & 0x7ff) as u16;
        let frac = bits & ((1 << 52) - 1);
        match exp {
            0x7ff if frac == 0 => F80::from_parts(neg, 0x7fff, 1 << 63),
            0x7ff => F80::from_parts(neg, 0x7fff, 3 << 62 | frac << 11),
            0 if frac == 0 => F80::from_parts(neg, 0, 0),
            0 => {
                // frac * 2^-1074, normalized: the leading one moved to bit 63.
                let lz = frac.leading_zeros();
                F80::from_parts(neg, (15372 - lz) as u16, frac << lz)
            }
            _ => F80::from_parts(neg, exp + (16383 - 1023), 1 << 63 | frac << 11),
        }
    }
}

/// 2^k for k in -1022..=1023, exactly.
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

impl PartialEq for F80 {
    fn eq(&self, o: &Self) -> bool {
        self.partial_cmp(o) == Some(Ordering::Equal)
    }
}

impl PartialOrd for F80 {
    /// Exact: by sign, then exponent and significand; NaNs are unordered, zeros equal.
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        if self.is_nan() || o.is_nan() {
            return None;
        }
        let key = |x: F80| {
            let (neg, e, m) = x.parts();
            let mag = u128::from(e) << 64 | u128::from(m);
            (neg, if m == 0 { 0 } else { mag })
        };
        let ((na, a), (nb, b)) = (key(*self), key(*o));
        Some(match (na, nb) {
            _ if a == 0 && b == 0 => Ordering::Equal,
            (false, false) => a.cmp(&b),
            (true, true) => b.cmp(&a),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        })
    }
}

impl Add for F80 {
    type Output = F80;
    fn add(self, o: F80) -> F80 {
        F80::from_f64(self.to_f64() + o.to_f64())
    }
}

impl Sub for F80 {
    type Output = F80;
    fn sub(self, o: F80) -> F80 {
        F80::from_f64(self.to_f64() - o.to_f64())
    }
}

impl Mul for F80 {
    type Output = F80;
    fn mul(self, o: F80) -> F80 {
        F80::from_f64(self.to_f64() * o.to_f64())
    }
}

impl Float for F80 {
    /// maxNum, exactly: the larger operand's bytes, a number rather than a NaN.
    fn fmax(self, o: Self) -> Self {
        if self.is_nan() || o > self {
            o
        } else {
            self
        }
    }
    fn fmin(self, o: Self) -> Self {
        if self.is_nan() || o < self {
            o
        } else {
            self
        }
    }
}

/// `long double`: MAX and MIN exact, SUM and PROD in double precision.
fn long_double(op: Predefined, io: &mut [u8], inp: &[u8]) {
    float::<F80>(op, io, inp)
}

/// MINLOC (`max` false) and MAXLOC over pairs `{ value; index; }`.
fn pairs(max: bool, ty: Basic, count: usize, io: &mut [u8], inp: &[u8]) {
    let (ext, off) = (ty.extent(), ty.index_offset());
    let f = match ty.pair() {
        Some((Num::F32, Num::I32)) => loc::<f32, i32>,
        Some((Num::F64, Num::I32)) => loc::<f64, i32>,
        Some((Num::I64, Num::I32)) => loc::<i64, i32>,
        Some((Num::I32, Num::I32)) => loc::<i32, i32>,
        Some((Num::I16, Num::I32)) => loc::<i16, i32>,
        Some((Num::F80, Num::I32)) => loc::<F80, i32>,
        Some((Num::F32, Num::F32)) => loc::<f32, f32>,
        Some((Num::F64, Num::F64)) => loc::<f64, f64>,
        p => unreachable!("no pair type is laid out as {p:?}"),
    };
    f(max, ext, off, count, io, inp)
}

/// The standard's MINLOC/MAXLOC: the smaller (larger) value wins with its index; on equal
/// values the index is the smaller of the two. An unordered (NaN) value leaves inout as it is.
fn loc<V: Elem + PartialOrd, I: Elem + PartialOrd>(
    max: bool,
    ext: usize,
    off: usize,
    count: usize,
    io: &mut [u8],
    inp: &[u8],
) {
    let want = if max {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    for k in 0..count {
        let (v, x) = (k * ext, k * ext + off);
        match V::get(&inp[v..]).partial_cmp(&V::get(&io[v..])) {
            Some(o) if o == want => {
                V::get(&inp[v..]).put(&mut io[v..]);
                I::get(&inp[x..]).put(&mut io[x..]);
            }
            Some(Ordering::Equal) if I::get(&inp[x..]) < I::get(&io[x..]) => {
                I::get(&inp[x..]).put(&mut io[x..]);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Predefined::*;

    /// An operation and what it should compute on one element (input, inout).
    type Case<T> = (Predefined, fn(T, T) -> T);

    fn bytes<const N: usize, T>(xs: &[T], to: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
        xs.iter().flat_map(to).collect()
    }

    /// Applies `op` and returns the new inout.
    fn run(op: Predefined, ty: Basic, count: usize, inout: &[u8], input: &[u8]) -> Vec<u8> {
        let mut io = inout.to_vec();
        apply(op, ty, count, &mut io, input).unwrap();
        io
    }

    /// A long double from its sign-and-exponent and significand, in 16 bytes (padding 0xee).
    fn ld(se: u16, mant: u64) -> [u8; 16] {
        let mut b = [0xee; 16];
        b[..8].copy_from_slice(&mant.to_le_bytes());
        b[8..10].copy_from_slice(&se.to_le_bytes());
        b
    }

    #[test]
    fn names() {
        assert_eq!(Sum.name(), "MPI_SUM");
        assert_eq!(NoOp.name(), "MPI_NO_OP");
        let mut seen = std::collections::HashSet::new();
        for op in Predefined::ALL {
            assert!(seen.insert(op.name()));
        }
        let mut seen = std::collections::HashSet::new();
        for ty in Basic::ALL {
            assert!(seen.insert(type_name(ty)));
        }
    }

    #[test]
    fn the_standard_table() {
        assert!(defined(Sum, Basic::Int));
        assert!(!defined(Sum, Basic::Byte));
        assert!(defined(Band, Basic::Byte));
        assert!(!defined(Land, Basic::Byte));
        assert!(!defined(Max, Basic::FloatComplex));
        assert!(defined(Prod, Basic::DoubleComplexF));
        assert!(defined(Land, Basic::Logical));
        assert!(defined(Lxor, Basic::CBool));
        assert!(!defined(Band, Basic::Logical));
        assert!(!defined(Sum, Basic::CxxBool));
        assert!(defined(Lor, Basic::UnsignedLong));
        assert!(!defined(Land, Basic::Double));
        assert!(!defined(Bor, Basic::Float));
        assert!(!defined(Minloc, Basic::Int));
        assert!(defined(Minloc, Basic::DoubleInt));
        assert!(defined(Maxloc, Basic::TwoInteger));
        assert!(!defined(Sum, Basic::TwoInt));
        assert!(!defined(Max, Basic::Char));
        assert!(!defined(Sum, Basic::Packed));
        assert!(!defined(Band, Basic::Packed));
        assert!(defined(Max, Basic::Aint));
        assert!(defined(Min, Basic::Real16));
        for ty in Basic::ALL {
            assert!(defined(Replace, ty) && defined(NoOp, ty));
        }
    }

    #[test]
    fn every_defined_pair_runs_and_undefined_ones_fail() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for ty in Basic::ALL {
            let n = 3 * ty.extent();
            let mut gen = || {
                (0..n)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect::<Vec<u8>>()
            };
            let (io, inp) = (gen(), gen());
            for op in Predefined::ALL {
                let mut out = io.clone();
                let r = apply(op, ty, 3, &mut out, &inp);
                if defined(op, ty) {
                    r.unwrap_or_else(|e| panic!("{}: {e}", type_name(ty)));
                    match op {
                        NoOp => assert_eq!(out, io),
                        Replace => {
                            let n = span(ty, 3).unwrap();
                            assert_eq!(out[..n], inp[..n]);
                            assert_eq!(out[n..], io[n..]);
                        }
                        _ => {}
                    }
                } else {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains(op.name()) && e.contains(type_name(ty)), "{e}");
                    assert_eq!(out, io, "failed call changed inout");
                }
            }
        }
    }

    #[test]
    fn error_messages() {
        let mut io = [0u8; 4];
        let e = apply(Sum, Basic::Byte, 4, &mut io, &[0; 4]).unwrap_err();
        assert_eq!(e.to_string(), "MPI_SUM is not defined for MPI_BYTE");
        let e = apply(Minloc, Basic::Int, 1, &mut io, &[0; 4]).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("MPI_MINLOC needs a pair type such as MPI_DOUBLE_INT"));
    }

    #[test]
    fn short_buffers_are_errors() {
        let mut io = vec![0u8; 12];
        assert!(apply(Sum, Basic::Int, 3, &mut io[..11], &[0; 12]).is_err());
        assert!(apply(Sum, Basic::Int, 3, &mut io, &[0; 11]).is_err());
        assert!(apply(NoOp, Basic::Int, 3, &mut io, &[0; 11]).is_err());
        assert!(apply(Replace, Basic::Int, 3, &mut io, &[1; 11]).is_err());
        assert_eq!(io, [0; 12]);
        assert!(apply(Sum, Basic::Int, usize::MAX, &mut io, &[0; 12]).is_err());
        assert!(apply(Maxloc, Basic::DoubleInt, usize::MAX / 8, &mut io, &[0; 12]).is_err());
        // Longer buffers are fine; the bytes after the span are left alone.
        let mut io = vec![7u8; 16];
        apply(Replace, Basic::Int, 3, &mut io, &[1; 20]).unwrap();
        assert_eq!(io[12..], [7; 4]);
        // Two MPI_DOUBLE_INTs span 16 + 12 bytes: the last one's padding is not needed.
        let mut io = vec![0u8; 28];
        assert!(apply(Minloc, Basic::DoubleInt, 2, &mut io, &[0; 27]).is_err());
        apply(Minloc, Basic::DoubleInt, 2, &mut io, &[0; 28]).unwrap();
        apply(Sum, Basic::Int, 0, &mut [], &[]).unwrap();
    }

    #[test]
    fn int_every_op() {
        let a = [i32::MAX, -3, 0, 7, 6, i32::MIN];
        let b = [1i32, 5, 0, -7, 3, -1];
        let (ba, bb) = (
            bytes(&a, |x| x.to_ne_bytes()),
            bytes(&b, |x| x.to_ne_bytes()),
        );
        let cases: [Case<i32>; 10] = [
            (Max, |x, y| if x > y { x } else { y }),
            (Min, |x, y| if x < y { x } else { y }),
            (Sum, |x, y| (i64::from(x) + i64::from(y)) as i32),
            (Prod, |x, y| (i64::from(x) * i64::from(y)) as i32),
            (Land, |x, y| (x != 0 && y != 0) as i32),
            (Lor, |x, y| (x != 0 || y != 0) as i32),
            (Lxor, |x, y| ((x != 0) ^ (y != 0)) as i32),
            (Band, |x, y| x & y),
            (Bor, |x, y| x | y),
            (Bxor, |x, y| x ^ y),
        ];
        for (op, f) in cases {
            let want: Vec<i32> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
            // Unaligned: shift both buffers by one byte.
            let mut io = vec![0u8; 1 + ba.len()];
            io[1..].copy_from_slice(&bb);
            let mut inp = vec![0u8; 1 + ba.len()];
            inp[1..].copy_from_slice(&ba);
            apply(op, Basic::Int, a.len(), &mut io[1..], &inp[1..]).unwrap();
            assert_eq!(io[1..], bytes(&want, |x| x.to_ne_bytes()), "{}", op.name());
        }
        // The wraps, spelled out.
        assert_eq!(
            run(
                Sum,
                Basic::Int,
                1,
                &1i32.to_ne_bytes(),
                &i32::MAX.to_ne_bytes()
            ),
            i32::MIN.to_ne_bytes()
        );
    }

    #[test]
    fn unsigned_char_every_op() {
        let a = [250u8, 0, 3, 16, 255];
        let b = [10u8, 0, 5, 1, 2];
        let cases: [Case<u8>; 10] = [
            (Max, |x, y| if x > y { x } else { y }),
            (Min, |x, y| if x < y { x } else { y }),
            (Sum, |x, y| ((u32::from(x) + u32::from(y)) % 256) as u8),
            (Prod, |x, y| ((u32::from(x) * u32::from(y)) % 256) as u8),
            (Land, |x, y| (x != 0 && y != 0) as u8),
            (Lor, |x, y| (x != 0 || y != 0) as u8),
            (Lxor, |x, y| ((x != 0) != (y != 0)) as u8),
            (Band, |x, y| x & y),
            (Bor, |x, y| x | y),
            (Bxor, |x, y| x ^ y),
        ];
        for (op, f) in cases {
            let want: Vec<u8> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
            assert_eq!(
                run(op, Basic::UnsignedChar, 5, &b, &a),
                want,
                "{}",
                op.name()
            );
        }
        assert_eq!(run(Sum, Basic::UnsignedChar, 1, &[250], &[10]), [4]);
        assert_eq!(run(Bxor, Basic::Byte, 2, &[0xf0, 1], &[0xff, 3]), [0x0f, 2]);
    }

    #[test]
    fn logical_and_bool() {
        let lg = |xs: &[u32]| bytes(xs, |x| x.to_ne_bytes());
        let (io, inp) = (lg(&[0, 5, 0, 2]), lg(&[0, 0, 3, 1]));
        assert_eq!(run(Land, Basic::Logical, 4, &io, &inp), lg(&[0, 0, 0, 1]));
        assert_eq!(run(Lor, Basic::Logical, 4, &io, &inp), lg(&[0, 1, 1, 1]));
        assert_eq!(run(Lxor, Basic::Logical, 4, &io, &inp), lg(&[0, 1, 1, 0]));
        assert_eq!(
            run(Land, Basic::CBool, 4, &[0, 1, 0, 1], &[0, 0, 1, 1]),
            [0, 0, 0, 1]
        );
        assert_eq!(
            run(Lor, Basic::CxxBool, 4, &[0, 1, 0, 1], &[0, 0, 1, 1]),
            [0, 1, 1, 1]
        );
        assert_eq!(
            run(Lxor, Basic::CBool, 4, &[0, 1, 0, 1], &[0, 0, 1, 1]),
            [0, 1, 1, 0]
        );
    }

    #[test]
    fn double_every_op() {
        let a = [1.5f64, -0.25, 1e308, f64::NAN, 3.0];
        let b = [2.0f64, 4.0, 1e308, 1.0, f64::NAN];
        let d = |xs: &[f64]| bytes(xs, |x| x.to_ne_bytes());
        let (io, inp) = (d(&b), d(&a));
        let get = |v: Vec<u8>| -> Vec<f64> {
            v.chunks(8)
                .map(|c| f64::from_ne_bytes(c.try_into().unwrap()))
                .collect()
        };
        let sum = get(run(Sum, Basic::Double, 5, &io, &inp));
        assert_eq!(sum[..3], [3.5, 3.75, f64::INFINITY]);
        assert!(sum[3].is_nan() && sum[4].is_nan());
        let prod = get(run(Prod, Basic::Double, 5, &io, &inp));
        assert_eq!(prod[..3], [3.0, -1.0, f64::INFINITY]);
        // maxNum/minNum: a number wins over a NaN.
        assert_eq!(
            get(run(Max, Basic::Double, 5, &io, &inp)),
            [2.0, 4.0, 1e308, 1.0, 3.0]
        );
        assert_eq!(
            get(run(Min, Basic::DoublePrecision, 5, &io, &inp)),
            [1.5, -0.25, 1e308, 1.0, 3.0]
        );
        let f = |xs: &[f32]| bytes(xs, |x| x.to_ne_bytes());
        assert_eq!(
            run(Sum, Basic::Float, 2, &f(&[1.0, 2.5]), &f(&[0.5, -1.0])),
            f(&[1.5, 1.5])
        );
    }

    #[test]
    fn complex_sum_and_prod() {
        let c = |xs: &[f32]| bytes(xs, |x| x.to_ne_bytes());
        // (1 + 2i)(3 + 4i) = -5 + 10i; (0.5 - i)(2 + 0i) = 1 - 2i.
        let (inp, io) = (c(&[1.0, 2.0, 0.5, -1.0]), c(&[3.0, 4.0, 2.0, 0.0]));
        assert_eq!(
            run(Prod, Basic::FloatComplex, 2, &io, &inp),
            c(&[-5.0, 10.0, 1.0, -2.0])
        );
        assert_eq!(
            run(Sum, Basic::FloatComplex, 2, &io, &inp),
            c(&[4.0, 6.0, 2.5, -1.0])
        );
        let z = |xs: &[f64]| bytes(xs, |x| x.to_ne_bytes());
        assert_eq!(
            run(Prod, Basic::Complex16, 1, &z(&[0.0, 1.0]), &z(&[0.0, 1.0])),
            z(&[-1.0, 0.0])
        );
        // long double complex: (1 + 2i)(1.5 + 0i) = 1.5 + 3i.
        let one = ld(0x3fff, 1 << 63);
        let two = ld(0x4000, 1 << 63);
        let three = ld(0x4000, 3 << 62);
        let one_half = ld(0x3fff, 3 << 62);
        let zero = ld(0, 0);
        let inp = [one, two].concat();
        let io = [one_half, zero].concat();
        let out = run(Prod, Basic::LongDoubleComplex, 1, &io, &inp);
        assert_eq!(out[..10], one_half[..10]);
        assert_eq!(out[16..26], three[..10]);
    }

    #[test]
    fn long_double_every_op() {
        // 1.5 + 2.25 = 3.75, 1.5 * 2.25 = 3.375; padding bytes of inout (0xee) left alone.
        let (x, y) = (ld(0x3fff, 0xc000 << 48), ld(0x4000, 0x9000 << 48));
        assert_eq!(
            run(Sum, Basic::LongDouble, 1, &y, &x),
            ld(0x4000, 0xf000 << 48)
        );
        assert_eq!(
            run(Prod, Basic::LongDouble, 1, &y, &x),
            ld(0x4000, 0xd800 << 48)
        );
        // MAX and MIN are exact, even on values an f64 cannot hold (1 + 2^-63 vs 1).
        let one = ld(0x3fff, 1 << 63);
        let above = ld(0x3fff, 1 << 63 | 1);
        let minus = ld(0xbfff, 1 << 63 | 1);
        let io = [one, minus].concat();
        let inp = [above, one].concat();
        assert_eq!(
            run(Max, Basic::LongDouble, 2, &io, &inp),
            [above, one].concat()
        );
        assert_eq!(run(Min, Basic::Real16, 2, &io, &inp), [one, minus].concat());
        // A NaN loses to a number.
        let nan = ld(0x7fff, 3 << 62);
        assert_eq!(run(Max, Basic::LongDouble, 1, &nan, &one), one);
        assert_eq!(run(Min, Basic::LongDouble, 1, &one, &nan), one);
    }

    #[test]
    fn f80_conversion() {
        let f = |se: u16, mant: u64| F80::from_parts(se >> 15 == 1, se & 0x7fff, mant);
        let known: [(f64, u16, u64); 10] = [
            (1.0, 0x3fff, 1 << 63),
            (-2.0, 0xc000, 1 << 63),
            (0.5, 0x3ffe, 1 << 63),
            (3.0, 0x4000, 3 << 62),
            (0.0, 0, 0),
            (-0.0, 0x8000, 0),
            (f64::INFINITY, 0x7fff, 1 << 63),
            (f64::NEG_INFINITY, 0xffff, 1 << 63),
            (f64::MIN_POSITIVE, 16383 - 1022, 1 << 63),
            (f64::MAX, 16383 + 1023, 0xffff_ffff_ffff_f800),
        ];
        for (x, se, mant) in known {
            assert_eq!(F80::from_f64(x).0, f(se, mant).0, "{x}");
            assert_eq!(f(se, mant).to_f64().to_bits(), x.to_bits(), "{x}");
        }
        // The smallest f64 denormal, 2^-1074, and a larger one, 3 * 2^-1074.
        let tiny = f64::from_bits(1);
        assert_eq!(F80::from_f64(tiny).0, f(16383 - 1074, 1 << 63).0);
        assert_eq!(f(16383 - 1074, 1 << 63).to_f64(), tiny);
        assert_eq!(F80::from_f64(3.0 * tiny).0, f(16383 - 1073, 3 << 62).0);
        assert_eq!(f(16383 - 1073, 3 << 62).to_f64(), 3.0 * tiny);
        // NaN both ways.
        assert!(F80::from_f64(f64::NAN).is_nan());
        assert!(f(0x7fff, 1 << 63 | 1).to_f64().is_nan());
        assert!(f(0x7fff, 1).to_f64().is_nan());
        // Out of f64's range: to infinity, to zero; 80-bit denormals to zero.
        assert_eq!(f(0x7ffe, 1 << 63).to_f64(), f64::INFINITY);
        assert_eq!(f(0xfffe, 1 << 63).to_f64(), f64::NEG_INFINITY);
        assert_eq!(f(1, 1 << 63).to_f64().to_bits(), 0);
        assert_eq!(f(0x8000, 12345).to_f64().to_bits(), (-0.0f64).to_bits());
        assert_eq!(f(16383 - 1076, 1 << 63).to_f64(), 0.0);
        // Rounding to nearest even: 1 + 2^-53 is a tie (down to 1), 1 + 2^-53 + 2^-63 is not.
        assert_eq!(f(0x3fff, 1 << 63 | 1 << 10).to_f64(), 1.0);
        assert_eq!(
            f(0x3fff, 1 << 63 | 1 << 10 | 1).to_f64(),
            1.0 + f64::EPSILON
        );
        assert_eq!(f(0x3fff, u64::MAX).to_f64(), 2.0);
        // Every f64 survives the round trip exactly.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = f64::from_bits(s);
            let y = F80::from_f64(x).to_f64();
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{x:e}"
            );
        }
        // Exact comparison agrees with f64's on f64 values.
        let vals = [
            -f64::INFINITY,
            -2.0,
            -tiny,
            -0.0,
            0.0,
            tiny,
            1.0,
            3.0,
            f64::MAX,
        ];
        for a in vals {
            for b in vals {
                let (x, y) = (F80::from_f64(a), F80::from_f64(b));
                assert_eq!(x.partial_cmp(&y), a.partial_cmp(&b), "{a} {b}");
            }
        }
    }

    #[test]
    fn double_int_minloc_maxloc() {
        // { double; int; } in 16 bytes: padding 12..16 (0xaa) left alone.
        let di = |xs: &[(f64, i32)]| -> Vec<u8> {
            xs.iter()
                .flat_map(|&(v, i)| {
                    let mut b = [0xaa; 16];
                    b[..8].copy_from_slice(&v.to_ne_bytes());
                    b[8..12].copy_from_slice(&i.to_ne_bytes());
                    b
                })
                .collect()
        };
        let io = di(&[(1.0, 5), (2.0, 7), (3.0, 9), (4.0, 1)]);
        let inp = di(&[(0.5, 8), (2.0, 3), (3.5, 2), (4.0, 4)]);
        assert_eq!(
            run(Minloc, Basic::DoubleInt, 4, &io, &inp),
            di(&[(0.5, 8), (2.0, 3), (3.0, 9), (4.0, 1)])
        );
        assert_eq!(
            run(Maxloc, Basic::DoubleInt, 4, &io, &inp),
            di(&[(1.0, 5), (2.0, 3), (3.5, 2), (4.0, 1)])
        );
    }

    #[test]
    fn short_int_with_its_padding() {
        // { short; int; }: value at 0, padding 2..4 (0xbb), index at 4.
        let si = |xs: &[(i16, i32)]| -> Vec<u8> {
            xs.iter()
                .flat_map(|&(v, i)| {
                    let mut b = [0xbb; 8];
                    b[..2].copy_from_slice(&v.to_ne_bytes());
                    b[4..].copy_from_slice(&i.to_ne_bytes());
                    b
                })
                .collect()
        };
        let io = si(&[(-5, 0), (7, 3), (7, 3)]);
        let inp = si(&[(-6, 1), (7, 2), (7, 4)]);
        assert_eq!(
            run(Minloc, Basic::ShortInt, 3, &io, &inp),
            si(&[(-6, 1), (7, 2), (7, 3)])
        );
        assert_eq!(
            run(Maxloc, Basic::ShortInt, 3, &io, &inp),
            si(&[(-5, 0), (7, 2), (7, 3)])
        );
    }

    #[test]
    fn two_int_and_other_pairs() {
        let ii = |xs: &[(i32, i32)]| {
            bytes(xs, |&(v, i)| {
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&v.to_ne_bytes());
                b[4..].copy_from_slice(&i.to_ne_bytes());
                b
            })
        };
        let io = ii(&[(3, 0), (-1, 9), (5, 5)]);
        let inp = ii(&[(3, 1), (-2, 0), (5, 4)]);
        assert_eq!(
            run(Minloc, Basic::TwoInt, 3, &io, &inp),
            ii(&[(3, 0), (-2, 0), (5, 4)])
        );
        assert_eq!(
            run(Maxloc, Basic::TwoInteger, 3, &io, &inp),
            ii(&[(3, 0), (-1, 9), (5, 4)])
        );
        // { long double; int; }: index at 16, extent 32.
        let ldi = |x: [u8; 16], i: i32| {
            let mut b = [0xcc; 32];
            b[..16].copy_from_slice(&x);
            b[16..20].copy_from_slice(&i.to_ne_bytes());
            b
        };
        let (one, above) = (ld(0x3fff, 1 << 63), ld(0x3fff, 1 << 63 | 1));
        assert_eq!(
            run(
                Maxloc,
                Basic::LongDoubleInt,
                1,
                &ldi(one, 0),
                &ldi(above, 3)
            ),
            ldi(above, 3)
        );
        assert_eq!(
            run(Minloc, Basic::LongDoubleInt, 1, &ldi(one, 2), &ldi(one, 1)),
            ldi(one, 1)
        );
        // { double precision; double precision; }: the index is a double too.
        let dd = |v: f64, i: f64| [v.to_ne_bytes(), i.to_ne_bytes()].concat();
        assert_eq!(
            run(
                Minloc,
                Basic::TwoDoublePrecision,
                1,
                &dd(1.0, 4.0),
                &dd(1.0, 2.0)
            ),
            dd(1.0, 2.0)
        );
        // A NaN value leaves inout as it is.
        let fi = |v: f32, i: i32| [v.to_ne_bytes(), i.to_ne_bytes()].concat();
        assert_eq!(
            run(Minloc, Basic::FloatInt, 1, &fi(1.0, 4), &fi(f32::NAN, 0)),
            fi(1.0, 4)
        );
    }
}
