//! Groups: ordered sets of ranks, held as world ranks.

use super::{count, need, out, put, run, slice, slice_mut, Abi};
use crate::error::{err, Class, MpiError, MpiResult};
use crate::state::{Mpi, GROUP_EMPTY};
use std::ffi::c_int;

/// MPI_IDENT/SIMILAR/UNEQUAL for two member lists (`comms`: CONGRUENT for equal lists, as
/// communicators with different contexts compare).
pub(crate) fn compare_members<A: Abi>(a: &[u32], b: &[u32], comms: bool) -> c_int {
    if a == b {
        return if comms { A::COMPARE[1] } else { A::COMPARE[0] };
    }
    let mut x = a.to_vec();
    let mut y = b.to_vec();
    x.sort_unstable();
    y.sort_unstable();
    if x == y {
        A::COMPARE[2]
    } else {
        A::COMPARE[3]
    }
}

fn group<A: Abi>(m: &Mpi, g: A::Group) -> MpiResult<&Vec<u32>> {
    A::group_id(g)
        .and_then(|g| m.groups.get(g))
        .ok_or_else(|| MpiError::new(Class::Group, "invalid group (null, freed or not a group)"))
}

fn store<A: Abi>(m: &mut Mpi, members: Vec<u32>, out_g: *mut A::Group) -> MpiResult<()> {
    let slot = out(out_g, "new group")?;
    if members.is_empty() {
        *slot = A::group(GROUP_EMPTY);
        return Ok(());
    }
    let id = m
        .groups
        .insert(members)
        .ok_or_else(|| MpiError::new(Class::Intern, "too many groups (65536)"))?;
    *slot = A::group(id);
    Ok(())
}

/// MPI_Comm_group.
pub fn comm_group<A: Abi>(comm: A::Comm, g: *mut A::Group) -> c_int {
    run::<A>("MPI_Comm_group", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        let members = m.world.attach(&c.id).world_ranks();
        store::<A>(m, members, g)
    })
}

/// MPI_Group_size.
pub fn group_size<A: Abi>(g: A::Group, size: *mut c_int) -> c_int {
    run::<A>("MPI_Group_size", None, |m| {
        let n = group::<A>(m, g)?.len();
        put(size, n as c_int, "size")
    })
}

/// MPI_Group_rank: this process's rank in the group, or MPI_UNDEFINED.
pub fn group_rank<A: Abi>(g: A::Group, rank: *mut c_int) -> c_int {
    run::<A>("MPI_Group_rank", None, |m| {
        let me = m.world.rank();
        let r = group::<A>(m, g)?
            .iter()
            .position(|&w| w == me)
            .map_or(A::UNDEFINED, |p| p as c_int);
        put(rank, r, "rank")
    })
}

/// Ranks of a group, checked against its size and for duplicates.
fn ranks_of(n: c_int, ranks: *const c_int, size: usize) -> MpiResult<Vec<usize>> {
    let r = slice(ranks, count(n)?, "ranks")?;
    let mut seen = vec![false; size];
    r.iter()
        .map(|&x| {
            let i = usize::try_from(x)
                .ok()
                .filter(|&i| i < size)
                .ok_or_else(|| {
                    MpiError::new(Class::Rank, format!("rank {x} is not in a group of {size}"))
                })?;
            if std::mem::replace(&mut seen[i], true) {
                return err(Class::Rank, format!("rank {x} appears twice"));
            }
            Ok(i)
        })
        .collect()
}

/// MPI_Group_incl.
pub fn group_incl<A: Abi>(
    g: A::Group,
    n: c_int,
    ranks: *const c_int,
    newg: *mut A::Group,
) -> c_int {
    run::<A>("MPI_Group_incl", None, |m| {
        let src = group::<A>(m, g)?;
        let sel = ranks_of(n, ranks, src.len())?;
        let members = sel.iter().map(|&i| src[i]).collect();
        store::<A>(m, members, newg)
    })
}

/// MPI_Group_excl.
pub fn group_excl<A: Abi>(
    g: A::Group,
    n: c_int,
    ranks: *const c_int,
    newg: *mut A::Group,
) -> c_int {
    run::<A>("MPI_Group_excl", None, |m| {
        let src = group::<A>(m, g)?;
        let sel = ranks_of(n, ranks, src.len())?;
        let members = src
            .iter()
            .enumerate()
            .filter(|(i, _)| !sel.contains(i))
            .map(|(_, &w)| w)
            .collect();
        store::<A>(m, members, newg)
    })
}

/// Expands (first, last, stride) triplets into ranks.
fn ranges(n: c_int, r: *const [c_int; 3], size: usize) -> MpiResult<Vec<c_int>> {
    let mut out = Vec::new();
    for &[first, last, stride] in slice(r, count(n)?, "ranges")? {
        if stride == 0 {
            return err(Class::Arg, "range with stride 0");
        }
        let mut x = first;
        while (stride > 0 && x <= last) || (stride < 0 && x >= last) {
            out.push(x);
            if out.len() > size {
                return err(Class::Rank, "ranges name more ranks than the group has");
            }
            x = x
                .checked_add(stride)
                .ok_or_else(|| MpiError::new(Class::Arg, "range overflows"))?;
        }
    }
    Ok(out)
}

/// MPI_Group_range_incl.
pub fn group_range_incl<A: Abi>(
    g: A::Group,
    n: c_int,
    r: *const [c_int; 3],
    newg: *mut A::Group,
) -> c_int {
    run::<A>("MPI_Group_range_incl", None, |m| {
        let src = group::<A>(m, g)?;
        let list = ranges(n, r, src.len())?;
        let sel = ranks_of(list.len() as c_int, list.as_ptr(), src.len())?;
        let members = sel.iter().map(|&i| src[i]).collect();
        store::<A>(m, members, newg)
    })
}

/// MPI_Group_range_excl.
pub fn group_range_excl<A: Abi>(
    g: A::Group,
    n: c_int,
    r: *const [c_int; 3],
    newg: *mut A::Group,
) -> c_int {
    run::<A>("MPI_Group_range_excl", None, |m| {
        let src = group::<A>(m, g)?;
        let list = ranges(n, r, src.len())?;
        let sel = ranks_of(list.len() as c_int, list.as_ptr(), src.len())?;
        let members = src
            .iter()
            .enumerate()
            .filter(|(i, _)| !sel.contains(i))
            .map(|(_, &w)| w)
            .collect();
        store::<A>(m, members, newg)
    })
}

fn combine<A: Abi>(
    name: &'static str,
    g1: A::Group,
    g2: A::Group,
    newg: *mut A::Group,
    f: fn(&[u32], &[u32]) -> Vec<u32>,
) -> c_int {
    run::<A>(name, None, |m| {
        let a = group::<A>(m, g1)?;
        let b = group::<A>(m, g2)?;
        let members = f(a, b);
        store::<A>(m, members, newg)
    })
}

/// MPI_Group_union: the first group's ranks, then the second's not in it.
pub fn group_union<A: Abi>(g1: A::Group, g2: A::Group, newg: *mut A::Group) -> c_int {
    combine::<A>("MPI_Group_union", g1, g2, newg, |a, b| {
        let mut v = a.to_vec();
        v.extend(b.iter().filter(|w| !a.contains(w)));
        v
    })
}

/// MPI_Group_intersection: the first group's ranks that are in the second, in its order.
pub fn group_intersection<A: Abi>(g1: A::Group, g2: A::Group, newg: *mut A::Group) -> c_int {
    combine::<A>("MPI_Group_intersection", g1, g2, newg, |a, b| {
        a.iter().filter(|w| b.contains(w)).copied().collect()
    })
}

/// MPI_Group_difference: the first group's ranks not in the second.
pub fn group_difference<A: Abi>(g1: A::Group, g2: A::Group, newg: *mut A::Group) -> c_int {
    combine::<A>("MPI_Group_difference", g1, g2, newg, |a, b| {
        a.iter().filter(|w| !b.contains(w)).copied().collect()
    })
}

/// MPI_Group_translate_ranks.
pub fn group_translate_ranks<A: Abi>(
    g1: A::Group,
    n: c_int,
    r1: *const c_int,
    g2: A::Group,
    r2: *mut c_int,
) -> c_int {
    run::<A>("MPI_Group_translate_ranks", None, |m| {
        let a = group::<A>(m, g1)?;
        let b = group::<A>(m, g2)?;
        let n = count(n)?;
        let src = slice(r1, n, "ranks")?;
        let dst = slice_mut(r2, n, "translated ranks")?;
        for (i, &r) in src.iter().enumerate() {
            dst[i] = if r == A::PROC_NULL {
                A::PROC_NULL
            } else {
                let w = usize::try_from(r)
                    .ok()
                    .and_then(|r| a.get(r))
                    .ok_or_else(|| {
                        MpiError::new(
                            Class::Rank,
                            format!("rank {r} is not in a group of {}", a.len()),
                        )
                    })?;
                b.iter()
                    .position(|x| x == w)
                    .map_or(A::UNDEFINED, |p| p as c_int)
            };
        }
        Ok(())
    })
}

/// MPI_Group_compare.
pub fn group_compare<A: Abi>(g1: A::Group, g2: A::Group, result: *mut c_int) -> c_int {
    run::<A>("MPI_Group_compare", None, |m| {
        let a = group::<A>(m, g1)?;
        let b = group::<A>(m, g2)?;
        put(result, compare_members::<A>(a, b, false), "result")
    })
}

/// MPI_Group_free.
pub fn group_free<A: Abi>(g: *mut A::Group) -> c_int {
    run::<A>("MPI_Group_free", None, |m| {
        let slot = out(g, "group")?;
        let id = need(A::group_id(*slot), Class::Group, "group")?;
        if !m.groups.is_predefined(id) && m.groups.remove(id).is_none() {
            return err(Class::Group, "invalid group (already freed?)");
        }
        *slot = A::GROUP_NULL;
        Ok(())
    })
}
