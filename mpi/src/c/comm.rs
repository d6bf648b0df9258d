//! Communicators: size and rank, duplicate, split, create, free, compare, names, attributes
//! and error handlers.

use super::{need, out, put, run, Abi};
use crate::error::{err, Class, MpiError, MpiResult};
use crate::handle::Id;
use crate::state::{errh, CommObj, ErrhObj, Mpi};
use snoo::CommId;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicI32, Ordering};

/// Stores a new communicator (inheriting `parent`'s error handler) and writes its handle; a rank
/// that got none gets MPI_COMM_NULL.
pub(crate) fn store_comm<A: Abi>(
    m: &mut Mpi,
    parent: Id,
    c: Option<CommId>,
    newcomm: *mut A::Comm,
) -> MpiResult<()> {
    let slot = out(newcomm, "new communicator")?;
    let Some(c) = c else {
        *slot = A::COMM_NULL;
        return Ok(());
    };
    let errh = m.comms.get(parent).map_or(errh::FATAL, |p| p.errh);
    let id = m
        .comms
        .insert(CommObj {
            id: c,
            name: String::new(),
            errh,
            cart: None,
            attrs: BTreeMap::new(),
            colls: Default::default(),
        })
        .ok_or_else(|| MpiError::new(Class::Intern, "too many communicators (65536)"))?;
    *slot = A::comm(id);
    Ok(())
}

/// MPI_Comm_size.
pub fn comm_size<A: Abi>(comm: A::Comm, size: *mut c_int) -> c_int {
    run::<A>("MPI_Comm_size", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        put(size, c.id.size() as c_int, "size")
    })
}

/// MPI_Comm_rank.
pub fn comm_rank<A: Abi>(comm: A::Comm, rank: *mut c_int) -> c_int {
    run::<A>("MPI_Comm_rank", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        put(rank, c.id.rank() as c_int, "rank")
    })
}

/// MPI_Comm_dup (attributes are not copied: see docs/mpi.md).
pub fn comm_dup<A: Abi>(comm: A::Comm, newcomm: *mut A::Comm) -> c_int {
    run::<A>("MPI_Comm_dup", Some(comm), |m| {
        out(newcomm, "new communicator")?;
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let c = m.comm(Some(id))?;
        let cart = c.cart.clone();
        let d = m.world.attach(&c.id).dup()?.detach();
        store_comm::<A>(m, id, Some(d), newcomm)?;
        // A duplicate keeps the topology.
        // SAFETY: written just above by store_comm.
        if let Some(n) = A::comm_id(unsafe { *newcomm }).and_then(|n| m.comms.get_mut(n)) {
            n.cart = cart;
        }
        Ok(())
    })
}

/// Splits `id` by (color, key): the common step of split, split_type, create and cart_create.
pub(crate) fn split_ids(
    m: &Mpi,
    id: Id,
    color: Option<u32>,
    key: i32,
) -> MpiResult<Option<CommId>> {
    let c = m.comm(Some(id))?;
    Ok(m.world.attach(&c.id).split(color, key)?.map(|c| c.detach()))
}

/// MPI_Comm_split.
pub fn comm_split<A: Abi>(comm: A::Comm, color: c_int, key: c_int, newcomm: *mut A::Comm) -> c_int {
    run::<A>("MPI_Comm_split", Some(comm), |m| {
        out(newcomm, "new communicator")?;
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let color = if color == A::UNDEFINED {
            None
        } else {
            Some(u32::try_from(color).map_err(|_| {
                MpiError::new(
                    Class::Arg,
                    format!("color {color}: colors are non-negative or MPI_UNDEFINED"),
                )
            })?)
        };
        let c = split_ids(m, id, color, key)?;
        store_comm::<A>(m, id, c, newcomm)
    })
}

/// MPI_Comm_split_type: every rank of a SNOO job shares the pool, so MPI_COMM_TYPE_SHARED keeps
/// them all (ordered by key); MPI_UNDEFINED gives MPI_COMM_NULL.
pub fn comm_split_type<A: Abi>(
    comm: A::Comm,
    split_type: c_int,
    key: c_int,
    _info: A::Info,
    newcomm: *mut A::Comm,
) -> c_int {
    run::<A>("MPI_Comm_split_type", Some(comm), |m| {
        out(newcomm, "new communicator")?;
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let color = if split_type == A::UNDEFINED {
            None
        } else if split_type == A::COMM_TYPE_SHARED {
            Some(0)
        } else {
            return err(Class::Arg, format!("split type {split_type}: only MPI_COMM_TYPE_SHARED and MPI_UNDEFINED are known"));
        };
        let c = split_ids(m, id, color, key)?;
        store_comm::<A>(m, id, c, newcomm)
    })
}

/// MPI_Comm_create: the ranks of `group` (a subset of the communicator, the same on every rank)
/// get a communicator, in the group's order.
pub fn comm_create<A: Abi>(comm: A::Comm, group: A::Group, newcomm: *mut A::Comm) -> c_int {
    run::<A>("MPI_Comm_create", Some(comm), |m| {
        out(newcomm, "new communicator")?;
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let g = A::group_id(group)
            .and_then(|g| m.groups.get(g))
            .ok_or_else(|| MpiError::new(Class::Group, "invalid group"))?;
        let c = m.comm(Some(id))?;
        let members = m.world.attach(&c.id).world_ranks();
        if let Some(w) = g.iter().find(|w| !members.contains(w)) {
            return err(
                Class::Group,
                format!("the group has world rank {w}, which is not in the communicator"),
            );
        }
        let me = m.world.rank();
        let pos = g.iter().position(|&w| w == me);
        let c = split_ids(m, id, pos.map(|_| 0), pos.unwrap_or(0) as c_int)?;
        store_comm::<A>(m, id, c, newcomm)
    })
}

/// MPI_Comm_free.
pub fn comm_free<A: Abi>(comm: *mut A::Comm) -> c_int {
    run::<A>("MPI_Comm_free", None, |m| {
        let h = out(comm, "communicator")?;
        let id = need(A::comm_id(*h), Class::Comm, "communicator")?;
        if m.comms.is_predefined(id) {
            return err(
                Class::Comm,
                "MPI_COMM_WORLD and MPI_COMM_SELF cannot be freed",
            );
        }
        let c = m
            .comms
            .remove(id)
            .ok_or_else(|| MpiError::new(Class::Comm, "invalid communicator (already freed?)"))?;
        *h = A::COMM_NULL;
        // Its collective area goes back for the next communicator once the other members are
        // done with it; after a member's death it is left unused (and the freeing still stands).
        let _ = m.world.attach(&c.id).release();
        Ok(())
    })
}

/// MPI_Comm_compare.
pub fn comm_compare<A: Abi>(c1: A::Comm, c2: A::Comm, result: *mut c_int) -> c_int {
    run::<A>("MPI_Comm_compare", Some(c1), |m| {
        let a = m.comm(A::comm_id(c1))?;
        let b = m.comm(A::comm_id(c2))?;
        let wa = m.world.attach(&a.id).world_ranks();
        let wb = m.world.attach(&b.id).world_ranks();
        let r = if a.id.context() == b.id.context() && wa == wb {
            A::COMPARE[0]
        } else {
            super::group::compare_members::<A>(&wa, &wb, true)
        };
        put(result, r, "result")
    })
}

/// MPI_Comm_test_inter: SNOO has intra-communicators only.
pub fn comm_test_inter<A: Abi>(comm: A::Comm, flag: *mut c_int) -> c_int {
    run::<A>("MPI_Comm_test_inter", Some(comm), |m| {
        m.comm(A::comm_id(comm))?;
        put(flag, 0, "flag")
    })
}

/// MPI_Comm_set_name.
pub fn comm_set_name<A: Abi>(comm: A::Comm, name: *const c_char) -> c_int {
    run::<A>("MPI_Comm_set_name", Some(comm), |m| {
        if name.is_null() {
            return err(Class::Arg, "NULL name");
        }
        // SAFETY: non-NULL: the program's NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let c = m
            .comms
            .get_mut(id)
            .ok_or_else(|| MpiError::new(Class::Comm, "invalid communicator"))?;
        c.name = s;
        Ok(())
    })
}

/// MPI_Comm_get_name (`cap` is the face's MPI_MAX_OBJECT_NAME).
pub fn comm_get_name<A: Abi>(comm: A::Comm, name: *mut c_char, len: *mut c_int) -> c_int {
    let cap = A::MAX_OBJECT_NAME;
    run::<A>("MPI_Comm_get_name", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        super::env::write_c_string(name, cap, &c.name, len)
    })
}

// Values the predefined attributes point to (they must outlive the call).
static TAG_UB: AtomicI32 = AtomicI32::new(snoo::TAG_UB);
static HOST: AtomicI32 = AtomicI32::new(0);
static IO: AtomicI32 = AtomicI32::new(0);
static WTIME_IS_GLOBAL: AtomicI32 = AtomicI32::new(0);
static UNIVERSE_SIZE: AtomicI32 = AtomicI32::new(0);
static LASTUSEDCODE: AtomicI32 = AtomicI32::new(0);
static APPNUM: AtomicI32 = AtomicI32::new(0);

/// MPI_Comm_get_attr: the predefined attributes, and those set with MPI_Comm_set_attr.
pub fn comm_get_attr<A: Abi>(
    comm: A::Comm,
    keyval: c_int,
    value: *mut c_void,
    flag: *mut c_int,
) -> c_int {
    run::<A>("MPI_Comm_get_attr", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        let f = out(flag, "flag")?;
        let slot = out(value as *mut *mut c_void, "attribute value")?;
        let k = A::ATTR_KEYS;
        let fixed = |a: &'static AtomicI32, v: c_int| {
            a.store(v, Ordering::Relaxed);
            a.as_ptr() as *mut c_void
        };
        let p = if keyval == k[0] {
            Some(fixed(&TAG_UB, snoo::TAG_UB))
        } else if keyval == k[1] {
            Some(fixed(&HOST, A::PROC_NULL))
        } else if keyval == k[2] {
            // Every rank can do I/O.
            Some(fixed(&IO, A::ANY_SOURCE))
        } else if keyval == k[3] {
            Some(fixed(&WTIME_IS_GLOBAL, 0))
        } else if keyval == k[4] {
            Some(fixed(&UNIVERSE_SIZE, m.world.size() as c_int))
        } else if keyval == k[5] {
            Some(fixed(&LASTUSEDCODE, A::code(Class::ProcAborted)))
        } else if keyval == k[6] {
            Some(fixed(&APPNUM, 0))
        } else {
            c.attrs.get(&keyval).map(|&v| v as *mut c_void)
        };
        *f = c_int::from(p.is_some());
        if let Some(p) = p {
            *slot = p;
        }
        Ok(())
    })
}

/// MPI_Comm_set_attr (no copy or delete callbacks are run: see docs/mpi.md).
pub fn comm_set_attr<A: Abi>(comm: A::Comm, keyval: c_int, value: *mut c_void) -> c_int {
    run::<A>("MPI_Comm_set_attr", Some(comm), |m| {
        if A::ATTR_KEYS.contains(&keyval) {
            return err(Class::Keyval, "predefined attributes cannot be set");
        }
        if keyval <= 0 || keyval >= m.next_keyval {
            return err(Class::Keyval, format!("invalid keyval {keyval}"));
        }
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let c = m
            .comms
            .get_mut(id)
            .ok_or_else(|| MpiError::new(Class::Comm, "invalid communicator"))?;
        c.attrs.insert(keyval, value as usize);
        Ok(())
    })
}

/// MPI_Comm_delete_attr.
pub fn comm_delete_attr<A: Abi>(comm: A::Comm, keyval: c_int) -> c_int {
    run::<A>("MPI_Comm_delete_attr", Some(comm), |m| {
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let c = m
            .comms
            .get_mut(id)
            .ok_or_else(|| MpiError::new(Class::Comm, "invalid communicator"))?;
        c.attrs.remove(&keyval).map(|_| ()).ok_or_else(|| {
            MpiError::new(
                Class::Keyval,
                format!("keyval {keyval} is not set on this communicator"),
            )
        })
    })
}

/// MPI_Comm_create_keyval (callbacks are not called: see docs/mpi.md).
pub fn comm_create_keyval<A: Abi>(
    _copy: usize,
    _delete: usize,
    keyval: *mut c_int,
    _extra: *mut c_void,
) -> c_int {
    run::<A>("MPI_Comm_create_keyval", None, |m| {
        let k = m.next_keyval;
        m.next_keyval += 1;
        put(keyval, k, "keyval")
    })
}

/// MPI_Comm_free_keyval.
pub fn comm_free_keyval<A: Abi>(keyval: *mut c_int) -> c_int {
    run::<A>("MPI_Comm_free_keyval", None, |_| {
        put(keyval, A::KEYVAL_INVALID, "keyval")
    })
}

/// MPI_Comm_set_errhandler.
pub fn comm_set_errhandler<A: Abi>(comm: A::Comm, h: A::Errhandler) -> c_int {
    run::<A>("MPI_Comm_set_errhandler", Some(comm), |m| {
        let e = need(A::errhandler_id(h), Class::Arg, "error handler")?;
        if m.errhandlers.get(e).is_none() {
            return err(Class::Arg, "invalid error handler");
        }
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let c = m
            .comms
            .get_mut(id)
            .ok_or_else(|| MpiError::new(Class::Comm, "invalid communicator"))?;
        c.errh = e;
        Ok(())
    })
}

/// MPI_Comm_get_errhandler.
pub fn comm_get_errhandler<A: Abi>(comm: A::Comm, h: *mut A::Errhandler) -> c_int {
    run::<A>("MPI_Comm_get_errhandler", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        put(h, A::errhandler(c.errh), "error handler")
    })
}

/// MPI_Comm_create_errhandler.
pub fn comm_create_errhandler<A: Abi>(f: usize, h: *mut A::Errhandler) -> c_int {
    run::<A>("MPI_Comm_create_errhandler", None, |m| {
        if f == 0 {
            return err(Class::Arg, "NULL error handler function");
        }
        let slot = out(h, "error handler")?;
        let id = m
            .errhandlers
            .insert(ErrhObj::User(f))
            .ok_or_else(|| MpiError::new(Class::Intern, "too many error handlers"))?;
        *slot = A::errhandler(id);
        Ok(())
    })
}

/// MPI_Errhandler_free.
pub fn errhandler_free<A: Abi>(h: *mut A::Errhandler) -> c_int {
    run::<A>("MPI_Errhandler_free", None, |m| {
        let slot = out(h, "error handler")?;
        let id = need(A::errhandler_id(*slot), Class::Arg, "error handler")?;
        if !m.errhandlers.is_predefined(id) {
            // Communicators still using it keep a stale id: they fall back to FATAL (see
            // `errhandler_of`), never to another handler.
            m.errhandlers.remove(id);
        }
        *slot = A::ERRHANDLER_NULL;
        Ok(())
    })
}

/// MPI_Comm_call_errhandler.
pub fn comm_call_errhandler<A: Abi>(comm: A::Comm, code: c_int) -> c_int {
    let class = A::class(code).unwrap_or(Class::Other);
    run::<A>("MPI_Comm_call_errhandler", Some(comm), |m| {
        m.comm(A::comm_id(comm))?;
        err(class, format!("raised by the program with code {code}"))
    });
    A::code(Class::Success)
}
