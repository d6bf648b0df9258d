//! Cartesian topologies and MPI_Dims_create.

use super::comm::{split_ids, store_comm};
use super::{count, need, out, put, run, slice, slice_mut, Abi};
use crate::error::{err, Class, MpiError, MpiResult};
use crate::state::{Cart, Mpi};
use std::ffi::c_int;

/// MPI_Cart_create: the first prod(dims) ranks get the grid, in rank order (no reordering).
pub fn cart_create<A: Abi>(
    comm: A::Comm,
    ndims: c_int,
    dims: *const c_int,
    periods: *const c_int,
    _reorder: c_int,
    newcomm: *mut A::Comm,
) -> c_int {
    run::<A>("MPI_Cart_create", Some(comm), |m| {
        out(newcomm, "new communicator")?;
        let id = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let n = count(ndims)?;
        let d = slice(dims, n, "dims")?;
        let p = slice(periods, n, "periods")?;
        let mut total: u64 = 1;
        let mut grid = Vec::with_capacity(n);
        for &x in d {
            let x = u32::try_from(x).ok().filter(|&x| x > 0).ok_or_else(|| {
                MpiError::new(
                    Class::Dims,
                    format!("dimension {x}: dimensions are positive"),
                )
            })?;
            total = total.saturating_mul(u64::from(x));
            grid.push(x);
        }
        let size = m.comm(Some(id))?.id.size();
        if total > u64::from(size) {
            return err(
                Class::Dims,
                format!("a grid of {total} ranks does not fit a communicator of {size}"),
            );
        }
        let rank = m.comm(Some(id))?.id.rank();
        let inside = u64::from(rank) < total;
        let c = split_ids(m, id, inside.then_some(0), rank as c_int)?;
        store_comm::<A>(m, id, c, newcomm)?;
        // SAFETY: written just above by store_comm.
        if let Some(n) = A::comm_id(unsafe { *newcomm }).and_then(|n| m.comms.get_mut(n)) {
            n.cart = Some(Cart {
                dims: grid,
                periods: p.iter().map(|&x| x != 0).collect(),
            });
        }
        Ok(())
    })
}

fn cart<A: Abi>(m: &Mpi, comm: A::Comm) -> MpiResult<&Cart> {
    m.comm(A::comm_id(comm))?.cart.as_ref().ok_or_else(|| {
        MpiError::new(
            Class::Topology,
            "the communicator has no Cartesian topology",
        )
    })
}

fn coords_of(c: &Cart, mut rank: u32) -> Vec<c_int> {
    let mut out = vec![0; c.dims.len()];
    for i in (0..c.dims.len()).rev() {
        out[i] = (rank % c.dims[i]) as c_int;
        rank /= c.dims[i];
    }
    out
}

fn rank_of(c: &Cart, coords: &[c_int]) -> MpiResult<Option<u32>> {
    let mut r: u32 = 0;
    for (i, &x) in coords.iter().enumerate() {
        let d = c.dims[i] as c_int;
        let x = if c.periods[i] {
            x.rem_euclid(d)
        } else if x < 0 || x >= d {
            return Ok(None);
        } else {
            x
        };
        r = r * c.dims[i] + x as u32;
    }
    Ok(Some(r))
}

/// MPI_Cart_coords.
pub fn cart_coords<A: Abi>(
    comm: A::Comm,
    rank: c_int,
    maxdims: c_int,
    coords: *mut c_int,
) -> c_int {
    run::<A>("MPI_Cart_coords", Some(comm), |m| {
        let c = cart::<A>(m, comm)?;
        let total: u32 = c.dims.iter().product();
        let r = u32::try_from(rank)
            .ok()
            .filter(|&r| r < total)
            .ok_or_else(|| {
                MpiError::new(
                    Class::Rank,
                    format!("rank {rank} is not in a grid of {total}"),
                )
            })?;
        let n = count(maxdims)?.min(c.dims.len());
        slice_mut(coords, n, "coords")?.copy_from_slice(&coords_of(c, r)[..n]);
        Ok(())
    })
}

/// MPI_Cart_rank.
pub fn cart_rank<A: Abi>(comm: A::Comm, coords: *const c_int, rank: *mut c_int) -> c_int {
    run::<A>("MPI_Cart_rank", Some(comm), |m| {
        let c = cart::<A>(m, comm)?;
        let xs = slice(coords, c.dims.len(), "coords")?;
        match rank_of(c, xs)? {
            Some(r) => put(rank, r as c_int, "rank"),
            None => err(Class::Arg, "coordinates outside a non-periodic dimension"),
        }
    })
}

/// MPI_Cart_shift.
pub fn cart_shift<A: Abi>(
    comm: A::Comm,
    dir: c_int,
    disp: c_int,
    src: *mut c_int,
    dest: *mut c_int,
) -> c_int {
    run::<A>("MPI_Cart_shift", Some(comm), |m| {
        let c = cart::<A>(m, comm)?;
        let d = usize::try_from(dir)
            .ok()
            .filter(|&d| d < c.dims.len())
            .ok_or_else(|| {
                MpiError::new(
                    Class::Arg,
                    format!("direction {dir} of a {}-dimensional grid", c.dims.len()),
                )
            })?;
        let me = m.comm(A::comm_id(comm))?.id.rank();
        let mut xs = coords_of(c, me);
        let base = xs[d];
        xs[d] = base.saturating_add(disp);
        let to = rank_of(c, &xs)?.map_or(A::PROC_NULL, |r| r as c_int);
        xs[d] = base.saturating_sub(disp);
        let from = rank_of(c, &xs)?.map_or(A::PROC_NULL, |r| r as c_int);
        put(src, from, "source")?;
        put(dest, to, "dest")
    })
}

/// MPI_Cartdim_get.
pub fn cartdim_get<A: Abi>(comm: A::Comm, ndims: *mut c_int) -> c_int {
    run::<A>("MPI_Cartdim_get", Some(comm), |m| {
        let c = cart::<A>(m, comm)?;
        put(ndims, c.dims.len() as c_int, "ndims")
    })
}

/// MPI_Cart_get.
pub fn cart_get<A: Abi>(
    comm: A::Comm,
    maxdims: c_int,
    dims: *mut c_int,
    periods: *mut c_int,
    coords: *mut c_int,
) -> c_int {
    run::<A>("MPI_Cart_get", Some(comm), |m| {
        let c = cart::<A>(m, comm)?;
        let n = count(maxdims)?.min(c.dims.len());
        let me = m.comm(A::comm_id(comm))?.id.rank();
        let xs = coords_of(c, me);
        let d = slice_mut(dims, n, "dims")?;
        let p = slice_mut(periods, n, "periods")?;
        let x = slice_mut(coords, n, "coords")?;
        for i in 0..n {
            d[i] = c.dims[i] as c_int;
            p[i] = c_int::from(c.periods[i]);
            x[i] = xs[i];
        }
        Ok(())
    })
}

/// MPI_Topo_test.
pub fn topo_test<A: Abi>(comm: A::Comm, status: *mut c_int) -> c_int {
    run::<A>("MPI_Topo_test", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        put(
            status,
            if c.cart.is_some() {
                A::CART
            } else {
                A::UNDEFINED
            },
            "status",
        )
    })
}

/// MPI_Dims_create: fills the zero entries of `dims` with a factorisation of `nnodes` as
/// balanced as possible, largest first (as MPICH does).
pub fn dims_create<A: Abi>(nnodes: c_int, ndims: c_int, dims: *mut c_int) -> c_int {
    super::anytime::<A>("MPI_Dims_create", || {
        let n = count(ndims)?;
        let d = slice_mut(dims, n, "dims")?;
        let nodes = u64::try_from(nnodes)
            .ok()
            .filter(|&x| x > 0)
            .ok_or_else(|| {
                MpiError::new(Class::Arg, format!("nnodes {nnodes} must be positive"))
            })?;
        let mut fixed: u64 = 1;
        for &x in d.iter() {
            if x < 0 {
                return err(Class::Dims, format!("negative dimension {x}"));
            }
            if x > 0 {
                fixed *= x as u64;
            }
        }
        if !nodes.is_multiple_of(fixed) {
            return err(
                Class::Dims,
                format!("{nnodes} nodes cannot be split with the given dimensions"),
            );
        }
        let free = d.iter().filter(|&&x| x == 0).count();
        let mut rest = nodes / fixed;
        let mut fill = vec![1u64; free];
        if free > 0 {
            // Prime factors, largest first, each to the currently smallest dimension.
            let mut factors = Vec::new();
            let mut p = 2;
            while p * p <= rest {
                while rest.is_multiple_of(p) {
                    factors.push(p);
                    rest /= p;
                }
                p += 1;
            }
            if rest > 1 {
                factors.push(rest);
            }
            factors.sort_unstable_by(|a, b| b.cmp(a));
            for f in factors {
                let i = (0..free).min_by_key(|&i| fill[i]).expect("free > 0");
                fill[i] *= f;
            }
            fill.sort_unstable_by(|a, b| b.cmp(a));
        } else if rest != 1 {
            return err(Class::Dims, "the dimensions do not multiply to nnodes");
        }
        let mut it = fill.into_iter();
        for x in d.iter_mut() {
            if *x == 0 {
                *x = it.next().unwrap_or(1) as c_int;
            }
        }
        Ok(())
    })
}
