//! The predefined datatypes, ABI-neutral: each face maps its handle constants to these. A
//! predefined type is a basic C (or Fortran) number, a byte, or one of the MINLOC/MAXLOC pair
//! types (a value and an index, laid out as the C struct `{ value; int; }`).

/// How the bytes of one basic element are read by the reduction operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Num {
    /// Signed integers of 1, 2, 4, 8 bytes.
    I8,
    /// 2-byte signed.
    I16,
    /// 4-byte signed.
    I32,
    /// 8-byte signed.
    I64,
    /// Unsigned integers of 1, 2, 4, 8 bytes.
    U8,
    /// 2-byte unsigned.
    U16,
    /// 4-byte unsigned.
    U32,
    /// 8-byte unsigned.
    U64,
    /// IEEE single.
    F32,
    /// IEEE double.
    F64,
    /// x86 80-bit extended precision in 16 bytes (C `long double`).
    F80,
    /// Complex of two f32.
    C32,
    /// Complex of two f64.
    C64,
    /// Complex of two `long double`.
    C80,
    /// C `bool` / C++ `bool` (1 byte, 0 or 1).
    Bool,
    /// Fortran LOGICAL (4 bytes, zero is false).
    Logical,
    /// Bytes with no arithmetic (MPI_BYTE, MPI_PACKED, characters): only the bitwise operations
    /// apply to MPI_BYTE, none to the others.
    Raw,
}

/// A predefined datatype.
#[allow(missing_docs)] // the names are MPI's (MPI_SIGNED_CHAR is SignedChar, …)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Basic {
    Char,
    SignedChar,
    UnsignedChar,
    Byte,
    WChar,
    Short,
    UnsignedShort,
    Int,
    Unsigned,
    Long,
    UnsignedLong,
    LongLong,
    UnsignedLongLong,
    Float,
    Double,
    LongDouble,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    CBool,
    CxxBool,
    FloatComplex,
    DoubleComplex,
    LongDoubleComplex,
    CxxFloatComplex,
    CxxDoubleComplex,
    CxxLongDoubleComplex,
    Aint,
    Offset,
    Count,
    Packed,
    // Fortran types, usable from C as their C equivalents.
    Character,
    Logical,
    Integer,
    Real,
    DoublePrecision,
    Complex,
    DoubleComplexF,
    Integer1,
    Integer2,
    Integer4,
    Integer8,
    Real4,
    Real8,
    Real16,
    Complex8,
    Complex16,
    Complex32,
    // Pair types for MINLOC and MAXLOC.
    FloatInt,
    DoubleInt,
    LongInt,
    TwoInt,
    ShortInt,
    LongDoubleInt,
    TwoReal,
    TwoDoublePrecision,
    TwoInteger,
}

impl Basic {
    /// Every predefined type, in declaration order (`ALL[b as usize] == b`).
    pub const ALL: [Basic; 62] = {
        use Basic::*;
        [
            Char,
            SignedChar,
            UnsignedChar,
            Byte,
            WChar,
            Short,
            UnsignedShort,
            Int,
            Unsigned,
            Long,
            UnsignedLong,
            LongLong,
            UnsignedLongLong,
            Float,
            Double,
            LongDouble,
            Int8,
            Int16,
            Int32,
            Int64,
            Uint8,
            Uint16,
            Uint32,
            Uint64,
            CBool,
            CxxBool,
            FloatComplex,
            DoubleComplex,
            LongDoubleComplex,
            CxxFloatComplex,
            CxxDoubleComplex,
            CxxLongDoubleComplex,
            Aint,
            Offset,
            Count,
            Packed,
            Character,
            Logical,
            Integer,
            Real,
            DoublePrecision,
            Complex,
            DoubleComplexF,
            Integer1,
            Integer2,
            Integer4,
            Integer8,
            Real4,
            Real8,
            Real16,
            Complex8,
            Complex16,
            Complex32,
            FloatInt,
            DoubleInt,
            LongInt,
            TwoInt,
            ShortInt,
            LongDoubleInt,
            TwoReal,
            TwoDoublePrecision,
            TwoInteger,
        ]
    };

    /// For a pair type, (value, index): the C struct `{ value v; index i; }`. None otherwise.
    pub fn pair(self) -> Option<(Num, Num)> {
        use Basic::*;
        Some(match self {
            FloatInt => (Num::F32, Num::I32),
            DoubleInt => (Num::F64, Num::I32),
            LongInt => (Num::I64, Num::I32),
            TwoInt | TwoInteger => (Num::I32, Num::I32),
            ShortInt => (Num::I16, Num::I32),
            LongDoubleInt => (Num::F80, Num::I32),
            TwoReal => (Num::F32, Num::F32),
            TwoDoublePrecision => (Num::F64, Num::F64),
            _ => return None,
        })
    }

    /// How one element (or, for a pair type, the value) is read; `Num::Raw` for bytes.
    pub fn num(self) -> Num {
        use Basic::*;
        if let Some((v, _)) = self.pair() {
            return v;
        }
        match self {
            Char | Character | Packed | Byte => Num::Raw,
            SignedChar | Int8 | Integer1 => Num::I8,
            UnsignedChar | Uint8 => Num::U8,
            Short | Int16 | Integer2 => Num::I16,
            UnsignedShort | Uint16 => Num::U16,
            Int | Int32 | Integer | Integer4 => Num::I32,
            Unsigned | Uint32 | WChar => Num::U32,
            Long | LongLong | Int64 | Integer8 | Aint | Offset | Count => Num::I64,
            UnsignedLong | UnsignedLongLong | Uint64 => Num::U64,
            Float | Real | Real4 => Num::F32,
            Double | DoublePrecision | Real8 => Num::F64,
            LongDouble | Real16 => Num::F80,
            FloatComplex | CxxFloatComplex | Complex | Complex8 => Num::C32,
            DoubleComplex | CxxDoubleComplex | DoubleComplexF | Complex16 => Num::C64,
            LongDoubleComplex | CxxLongDoubleComplex | Complex32 => Num::C80,
            CBool | CxxBool => Num::Bool,
            Logical => Num::Logical,
            FloatInt | DoubleInt | LongInt | TwoInt | ShortInt | LongDoubleInt | TwoReal
            | TwoDoublePrecision | TwoInteger => unreachable!("pairs returned above"),
        }
    }

    /// Bytes of data in one element (MPI_Type_size): for a pair, value + index, no padding.
    pub fn size(self) -> usize {
        match self.pair() {
            Some((v, i)) => v.size() + i.size(),
            None => match self {
                Basic::Char | Basic::Character | Basic::Packed | Basic::Byte => 1,
                b => b.num().size(),
            },
        }
    }

    /// Bytes from one element to the next (MPI_Type_get_extent): the C struct's size for a pair
    /// (`{short; int;}` is 8 bytes, `{long double; int;}` 32), the size otherwise.
    pub fn extent(self) -> usize {
        match self.pair() {
            Some((v, i)) => {
                let align = v.align().max(i.align());
                (v.size() + i.size()).div_ceil(align) * align
            }
            None => self.size(),
        }
    }

    /// For a pair, the index's offset in the struct (the value is at 0).
    pub fn index_offset(self) -> usize {
        match self.pair() {
            Some((v, i)) => v.size().div_ceil(i.align()) * i.align(),
            None => 0,
        }
    }
}

impl Num {
    /// Bytes of one element.
    pub fn size(self) -> usize {
        match self {
            Num::I8 | Num::U8 | Num::Bool | Num::Raw => 1,
            Num::I16 | Num::U16 => 2,
            Num::I32 | Num::U32 | Num::F32 | Num::Logical => 4,
            Num::I64 | Num::U64 | Num::F64 | Num::C32 => 8,
            Num::F80 | Num::C64 => 16,
            Num::C80 => 32,
        }
    }

    /// Its alignment in a C struct on x86-64.
    pub fn align(self) -> usize {
        match self {
            Num::C32 => 4,
            Num::C64 => 8,
            Num::C80 | Num::F80 => 16,
            n => n.size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, b) in Basic::ALL.iter().enumerate() {
            assert_eq!(*b as usize, i);
        }
    }

    #[test]
    fn pair_layouts_are_the_c_structs() {
        // MPICH: MPI_SHORT_INT size 6 extent 8, MPI_DOUBLE_INT 12/16, MPI_LONG_DOUBLE_INT 20/32.
        assert_eq!((Basic::ShortInt.size(), Basic::ShortInt.extent()), (6, 8));
        assert_eq!(
            (Basic::DoubleInt.size(), Basic::DoubleInt.extent()),
            (12, 16)
        );
        assert_eq!(Basic::DoubleInt.index_offset(), 8);
        assert_eq!(
            (Basic::LongDoubleInt.size(), Basic::LongDoubleInt.extent()),
            (20, 32)
        );
        assert_eq!((Basic::FloatInt.size(), Basic::FloatInt.extent()), (8, 8));
        assert_eq!((Basic::TwoInt.size(), Basic::TwoInt.extent()), (8, 8));
        assert_eq!(Basic::LongDouble.size(), 16);
        assert_eq!(Basic::LongDoubleComplex.size(), 32);
    }
}
