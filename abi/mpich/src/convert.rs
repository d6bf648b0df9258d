//! The functions of MPICH's interface that are not calls of the implementation: handle
//! conversions to and from Fortran integers (MPICH's handles are integers already, so they are the
//! identity) and address arithmetic. Their lines have the `fn Name(` form the stub generator
//! reads.

use crate::{Comm, Datatype, Errhandler, Group, Info, Message, Op, Request};
use std::ffi::c_int;

/// MPICH's MPI_Fint.
pub type Fint = c_int;
/// MPICH's MPI_File, MPI_Win, MPI_Message, MPI_Session: integers.
pub type Other = c_int;

macro_rules! plain {
    ($( fn $name:ident ($($a:ident : $t:ty),*) -> $r:ty $body:block )*) => {
        $(
            #[doc = concat!("MPI_", stringify!($name), ".")]
            #[export_name = concat!("MPI_", stringify!($name))]
            pub extern "C" fn $name($($a: $t),*) -> $r $body
        )*
        /// The `PMPI_` names.
        #[allow(non_snake_case)]
        pub mod pmpi {
            use super::*;
            $(
                #[doc = concat!("PMPI_", stringify!($name), ".")]
                #[export_name = concat!("PMPI_", stringify!($name))]
                pub extern "C" fn $name($($a: $t),*) -> $r $body
            )*
        }
    };
}

// Handle conversions are the identity: MPICH's handles are integers.
plain! {
    fn Comm_c2f(h: Comm) -> Fint {
        h as Fint
    }
    fn Comm_f2c(h: Fint) -> Comm {
        h as Comm
    }
    fn Type_c2f(h: Datatype) -> Fint {
        h as Fint
    }
    fn Type_f2c(h: Fint) -> Datatype {
        h as Datatype
    }
    fn Group_c2f(h: Group) -> Fint {
        h as Fint
    }
    fn Group_f2c(h: Fint) -> Group {
        h as Group
    }
    fn Request_c2f(h: Request) -> Fint {
        h as Fint
    }
    fn Request_f2c(h: Fint) -> Request {
        h as Request
    }
    fn Op_c2f(h: Op) -> Fint {
        h as Fint
    }
    fn Op_f2c(h: Fint) -> Op {
        h as Op
    }
    fn Errhandler_c2f(h: Errhandler) -> Fint {
        h as Fint
    }
    fn Errhandler_f2c(h: Fint) -> Errhandler {
        h as Errhandler
    }
    fn Info_c2f(h: Info) -> Fint {
        h as Fint
    }
    fn Info_f2c(h: Fint) -> Info {
        h as Info
    }
    fn Win_c2f(h: Other) -> Fint {
        h as Fint
    }
    fn Win_f2c(h: Fint) -> Other {
        h as Other
    }
    fn File_c2f(h: Other) -> Fint {
        h as Fint
    }
    fn File_f2c(h: Fint) -> Other {
        h as Other
    }
    fn Message_c2f(h: Message) -> Fint {
        h as Fint
    }
    fn Message_f2c(h: Fint) -> Message {
        h as Other
    }
    fn Session_c2f(h: Other) -> Fint {
        h as Fint
    }
    fn Session_f2c(h: Fint) -> Other {
        h as Other
    }
    fn Comm_toint(h: Comm) -> c_int {
        h as c_int
    }
    fn Comm_fromint(h: c_int) -> Comm {
        h as Comm
    }
    fn Type_toint(h: Datatype) -> c_int {
        h as c_int
    }
    fn Type_fromint(h: c_int) -> Datatype {
        h as Datatype
    }
    fn Group_toint(h: Group) -> c_int {
        h as c_int
    }
    fn Group_fromint(h: c_int) -> Group {
        h as Group
    }
    fn Request_toint(h: Request) -> c_int {
        h as c_int
    }
    fn Request_fromint(h: c_int) -> Request {
        h as Request
    }
    fn Op_toint(h: Op) -> c_int {
        h as c_int
    }
    fn Op_fromint(h: c_int) -> Op {
        h as Op
    }
    fn Errhandler_toint(h: Errhandler) -> c_int {
        h as c_int
    }
    fn Errhandler_fromint(h: c_int) -> Errhandler {
        h as Errhandler
    }
    fn Info_toint(h: Info) -> c_int {
        h as c_int
    }
    fn Info_fromint(h: c_int) -> Info {
        h as Info
    }
    fn Win_toint(h: Other) -> c_int {
        h as c_int
    }
    fn Win_fromint(h: c_int) -> Other {
        h as Other
    }
    fn File_toint(h: Other) -> c_int {
        h as c_int
    }
    fn File_fromint(h: c_int) -> Other {
        h as Other
    }
    fn Message_toint(h: Message) -> c_int {
        h as c_int
    }
    fn Message_fromint(h: c_int) -> Message {
        h as Other
    }
    fn Session_toint(h: Other) -> c_int {
        h as c_int
    }
    fn Session_fromint(h: c_int) -> Other {
        h as Other
    }
    fn Aint_add(base: isize, disp: isize) -> isize {
        base.wrapping_add(disp)
    }
    fn Aint_diff(a: isize, b: isize) -> isize {
        a.wrapping_sub(b)
    }
}
