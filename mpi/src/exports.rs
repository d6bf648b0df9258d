//! Every implemented MPI function, once: [`export_mpi!`](crate::export_mpi) expands this list in
//! a face crate into `PMPI_Name` (the implementation) and `MPI_Name` (calling it, so tools can
//! interpose `MPI_` and reach `PMPI_`), with the face's handle types (`Comm`, `Datatype`, …
//! type aliases in the face's root). The faces' build scripts read the `fn Name(` lines of this
//! file to generate the stubs of the functions not listed here.

/// Exports the MPI functions for the face type `$face` (an [`Abi`](crate::c::Abi)); the crate
/// root must define the type aliases `Comm`, `Group`, `Datatype`, `Request`, `Op`, `Errhandler`,
/// `Status`, `Info` and `Message`.
#[macro_export]
macro_rules! export_mpi {
    ($face:ty) => {
        $crate::export_mpi! { @list $face;
            // Environment.
            fn Init(argc: *mut c_int, argv: *mut *mut *mut c_char) -> c_int = env::init;
            fn Init_thread(argc: *mut c_int, argv: *mut *mut *mut c_char, required: c_int, provided: *mut c_int) -> c_int = env::init_thread;
            fn Finalize() -> c_int = env::finalize;
            fn Initialized(flag: *mut c_int) -> c_int = env::initialized;
            fn Finalized(flag: *mut c_int) -> c_int = env::finalized;
            fn Query_thread(provided: *mut c_int) -> c_int = env::query_thread;
            fn Is_thread_main(flag: *mut c_int) -> c_int = env::is_thread_main;
            fn Abort(comm: Comm, code: c_int) -> c_int = env::abort;
            fn Wtime() -> c_double = env::wtime;
            fn Wtick() -> c_double = env::wtick;
            fn Get_processor_name(name: *mut c_char, len: *mut c_int) -> c_int = env::get_processor_name;
            fn Get_version(version: *mut c_int, subversion: *mut c_int) -> c_int = env::get_version;
            fn Get_library_version(version: *mut c_char, len: *mut c_int) -> c_int = env::get_library_version;
            fn Alloc_mem(size: isize, info: Info, baseptr: *mut c_void) -> c_int = env::alloc_mem;
            fn Free_mem(base: *mut c_void) -> c_int = env::free_mem;
            // Info objects.
            fn Info_create(info: *mut Info) -> c_int = info::info_create;
            fn Info_create_env(argc: c_int, argv: *mut *mut c_char, info: *mut Info) -> c_int = info::info_create_env;
            fn Info_dup(info: Info, newinfo: *mut Info) -> c_int = info::info_dup;
            fn Info_free(info: *mut Info) -> c_int = info::info_free;
            fn Info_set(info: Info, key: *const c_char, value: *const c_char) -> c_int = info::info_set;
            fn Info_delete(info: Info, key: *const c_char) -> c_int = info::info_delete;
            fn Info_get(info: Info, key: *const c_char, valuelen: c_int, value: *mut c_char, flag: *mut c_int) -> c_int = info::info_get;
            fn Info_get_valuelen(info: Info, key: *const c_char, valuelen: *mut c_int, flag: *mut c_int) -> c_int = info::info_get_valuelen;
            fn Info_get_string(info: Info, key: *const c_char, buflen: *mut c_int, value: *mut c_char, flag: *mut c_int) -> c_int = info::info_get_string;
            fn Info_get_nkeys(info: Info, nkeys: *mut c_int) -> c_int = info::info_get_nkeys;
            fn Info_get_nthkey(info: Info, n: c_int, key: *mut c_char) -> c_int = info::info_get_nthkey;
            fn Comm_set_info(comm: Comm, info: Info) -> c_int = info::comm_set_info;
            fn Comm_get_info(comm: Comm, info: *mut Info) -> c_int = info::comm_get_info;
            // Errors.
            fn Error_string(code: c_int, s: *mut c_char, len: *mut c_int) -> c_int = errors::error_string;
            fn Error_class(code: c_int, class: *mut c_int) -> c_int = errors::error_class;
            fn Comm_set_errhandler(comm: Comm, h: Errhandler) -> c_int = comm::comm_set_errhandler;
            fn Comm_get_errhandler(comm: Comm, h: *mut Errhandler) -> c_int = comm::comm_get_errhandler;
            fn Comm_create_errhandler(f: usize, h: *mut Errhandler) -> c_int = comm::comm_create_errhandler;
            fn Comm_call_errhandler(comm: Comm, code: c_int) -> c_int = comm::comm_call_errhandler;
            fn Errhandler_free(h: *mut Errhandler) -> c_int = comm::errhandler_free;
            // Point to point.
            fn Send(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm) -> c_int = p2p::send;
            fn Ssend(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm) -> c_int = p2p::ssend;
            fn Rsend(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm) -> c_int = p2p::rsend;
            fn Bsend(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm) -> c_int = p2p::bsend;
            fn Recv(buf: *mut c_void, count: c_int, dt: Datatype, source: c_int, tag: c_int, comm: Comm, status: *mut Status) -> c_int = p2p::recv;
            fn Isend(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::isend;
            fn Issend(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::issend;
            fn Irsend(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::irsend;
            fn Ibsend(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::ibsend;
            fn Irecv(buf: *mut c_void, count: c_int, dt: Datatype, source: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::irecv;
            fn Send_init(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::send_init;
            fn Ssend_init(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::ssend_init;
            fn Rsend_init(buf: *const c_void, count: c_int, dt: Datatype, dest: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::send_init;
            fn Recv_init(buf: *mut c_void, count: c_int, dt: Datatype, source: c_int, tag: c_int, comm: Comm, req: *mut Request) -> c_int = p2p::recv_init;
            fn Sendrecv(sbuf: *const c_void, scount: c_int, sdt: Datatype, dest: c_int, stag: c_int, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, source: c_int, rtag: c_int, comm: Comm, status: *mut Status) -> c_int = p2p::sendrecv;
            fn Sendrecv_replace(buf: *mut c_void, count: c_int, dt: Datatype, dest: c_int, stag: c_int, source: c_int, rtag: c_int, comm: Comm, status: *mut Status) -> c_int = p2p::sendrecv_replace;
            fn Probe(source: c_int, tag: c_int, comm: Comm, status: *mut Status) -> c_int = p2p::probe;
            fn Iprobe(source: c_int, tag: c_int, comm: Comm, flag: *mut c_int, status: *mut Status) -> c_int = p2p::iprobe;
            fn Mprobe(source: c_int, tag: c_int, comm: Comm, message: *mut Message, status: *mut Status) -> c_int = p2p::mprobe;
            fn Improbe(source: c_int, tag: c_int, comm: Comm, flag: *mut c_int, message: *mut Message, status: *mut Status) -> c_int = p2p::improbe;
            fn Mrecv(buf: *mut c_void, count: c_int, dt: Datatype, message: *mut Message, status: *mut Status) -> c_int = p2p::mrecv;
            fn Imrecv(buf: *mut c_void, count: c_int, dt: Datatype, message: *mut Message, req: *mut Request) -> c_int = p2p::imrecv;
            fn Buffer_attach(buf: *mut c_void, size: c_int) -> c_int = p2p::buffer_attach;
            fn Buffer_detach(buf: *mut c_void, size: *mut c_int) -> c_int = p2p::buffer_detach;
            fn Get_count(status: *const Status, dt: Datatype, count: *mut c_int) -> c_int = p2p::get_count;
            fn Get_elements(status: *const Status, dt: Datatype, count: *mut c_int) -> c_int = p2p::get_elements;
            // Requests.
            fn Wait(req: *mut Request, status: *mut Status) -> c_int = req::wait;
            fn Test(req: *mut Request, flag: *mut c_int, status: *mut Status) -> c_int = req::test;
            fn Waitall(n: c_int, reqs: *mut Request, statuses: *mut Status) -> c_int = req::waitall;
            fn Testall(n: c_int, reqs: *mut Request, flag: *mut c_int, statuses: *mut Status) -> c_int = req::testall;
            fn Waitany(n: c_int, reqs: *mut Request, index: *mut c_int, status: *mut Status) -> c_int = req::waitany;
            fn Testany(n: c_int, reqs: *mut Request, index: *mut c_int, flag: *mut c_int, status: *mut Status) -> c_int = req::testany;
            fn Waitsome(n: c_int, reqs: *mut Request, outcount: *mut c_int, indices: *mut c_int, statuses: *mut Status) -> c_int = req::waitsome;
            fn Testsome(n: c_int, reqs: *mut Request, outcount: *mut c_int, indices: *mut c_int, statuses: *mut Status) -> c_int = req::testsome;
            fn Request_free(req: *mut Request) -> c_int = req::request_free;
            fn Request_get_status(req: Request, flag: *mut c_int, status: *mut Status) -> c_int = req::request_get_status;
            fn Cancel(req: *mut Request) -> c_int = req::cancel;
            fn Test_cancelled(status: *const Status, flag: *mut c_int) -> c_int = req::test_cancelled;
            fn Start(req: *mut Request) -> c_int = req::start;
            fn Startall(n: c_int, reqs: *mut Request) -> c_int = req::startall;
            // Communicators.
            fn Comm_size(comm: Comm, size: *mut c_int) -> c_int = comm::comm_size;
            fn Comm_rank(comm: Comm, rank: *mut c_int) -> c_int = comm::comm_rank;
            fn Comm_dup(comm: Comm, newcomm: *mut Comm) -> c_int = comm::comm_dup;
            fn Comm_split(comm: Comm, color: c_int, key: c_int, newcomm: *mut Comm) -> c_int = comm::comm_split;
            fn Comm_split_type(comm: Comm, split_type: c_int, key: c_int, info: Info, newcomm: *mut Comm) -> c_int = comm::comm_split_type;
            fn Comm_create(comm: Comm, group: Group, newcomm: *mut Comm) -> c_int = comm::comm_create;
            fn Comm_free(comm: *mut Comm) -> c_int = comm::comm_free;
            fn Comm_compare(c1: Comm, c2: Comm, result: *mut c_int) -> c_int = comm::comm_compare;
            fn Comm_test_inter(comm: Comm, flag: *mut c_int) -> c_int = comm::comm_test_inter;
            fn Comm_set_name(comm: Comm, name: *const c_char) -> c_int = comm::comm_set_name;
            fn Comm_get_name(comm: Comm, name: *mut c_char, len: *mut c_int) -> c_int = comm::comm_get_name;
            fn Comm_get_attr(comm: Comm, keyval: c_int, value: *mut c_void, flag: *mut c_int) -> c_int = comm::comm_get_attr;
            fn Comm_set_attr(comm: Comm, keyval: c_int, value: *mut c_void) -> c_int = comm::comm_set_attr;
            fn Comm_delete_attr(comm: Comm, keyval: c_int) -> c_int = comm::comm_delete_attr;
            fn Comm_create_keyval(copy: usize, delete: usize, keyval: *mut c_int, extra: *mut c_void) -> c_int = comm::comm_create_keyval;
            fn Comm_free_keyval(keyval: *mut c_int) -> c_int = comm::comm_free_keyval;
            // Groups.
            fn Comm_group(comm: Comm, group: *mut Group) -> c_int = group::comm_group;
            fn Group_size(group: Group, size: *mut c_int) -> c_int = group::group_size;
            fn Group_rank(group: Group, rank: *mut c_int) -> c_int = group::group_rank;
            fn Group_incl(group: Group, n: c_int, ranks: *const c_int, newgroup: *mut Group) -> c_int = group::group_incl;
            fn Group_excl(group: Group, n: c_int, ranks: *const c_int, newgroup: *mut Group) -> c_int = group::group_excl;
            fn Group_range_incl(group: Group, n: c_int, ranges: *const [c_int; 3], newgroup: *mut Group) -> c_int = group::group_range_incl;
            fn Group_range_excl(group: Group, n: c_int, ranges: *const [c_int; 3], newgroup: *mut Group) -> c_int = group::group_range_excl;
            fn Group_union(g1: Group, g2: Group, newgroup: *mut Group) -> c_int = group::group_union;
            fn Group_intersection(g1: Group, g2: Group, newgroup: *mut Group) -> c_int = group::group_intersection;
            fn Group_difference(g1: Group, g2: Group, newgroup: *mut Group) -> c_int = group::group_difference;
            fn Group_translate_ranks(g1: Group, n: c_int, r1: *const c_int, g2: Group, r2: *mut c_int) -> c_int = group::group_translate_ranks;
            fn Group_compare(g1: Group, g2: Group, result: *mut c_int) -> c_int = group::group_compare;
            fn Group_free(group: *mut Group) -> c_int = group::group_free;
            // Topologies.
            fn Cart_create(comm: Comm, ndims: c_int, dims: *const c_int, periods: *const c_int, reorder: c_int, newcomm: *mut Comm) -> c_int = topo::cart_create;
            fn Cart_coords(comm: Comm, rank: c_int, maxdims: c_int, coords: *mut c_int) -> c_int = topo::cart_coords;
            fn Cart_rank(comm: Comm, coords: *const c_int, rank: *mut c_int) -> c_int = topo::cart_rank;
            fn Cart_shift(comm: Comm, dir: c_int, disp: c_int, source: *mut c_int, dest: *mut c_int) -> c_int = topo::cart_shift;
            fn Cart_get(comm: Comm, maxdims: c_int, dims: *mut c_int, periods: *mut c_int, coords: *mut c_int) -> c_int = topo::cart_get;
            fn Cartdim_get(comm: Comm, ndims: *mut c_int) -> c_int = topo::cartdim_get;
            fn Topo_test(comm: Comm, status: *mut c_int) -> c_int = topo::topo_test;
            fn Dims_create(nnodes: c_int, ndims: c_int, dims: *mut c_int) -> c_int = topo::dims_create;
            // Datatypes.
            fn Type_contiguous(count: c_int, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_contiguous;
            fn Type_vector(count: c_int, blocklen: c_int, stride: c_int, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_vector;
            fn Type_create_hvector(count: c_int, blocklen: c_int, stride: isize, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_hvector;
            fn Type_indexed(count: c_int, blocklens: *const c_int, displs: *const c_int, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_indexed;
            fn Type_create_hindexed(count: c_int, blocklens: *const c_int, displs: *const isize, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_hindexed;
            fn Type_create_indexed_block(count: c_int, blocklen: c_int, displs: *const c_int, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_indexed_block;
            fn Type_create_hindexed_block(count: c_int, blocklen: c_int, displs: *const isize, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_hindexed_block;
            fn Type_create_struct(count: c_int, blocklens: *const c_int, displs: *const isize, types: *const Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_struct;
            fn Type_create_subarray(ndims: c_int, sizes: *const c_int, subsizes: *const c_int, starts: *const c_int, order: c_int, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_subarray;
            fn Type_create_resized(old: Datatype, lb: isize, extent: isize, newtype: *mut Datatype) -> c_int = dtype::type_create_resized;
            fn Type_dup(old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_dup;
            fn Type_commit(dt: *mut Datatype) -> c_int = dtype::type_commit;
            fn Type_free(dt: *mut Datatype) -> c_int = dtype::type_free;
            fn Type_size(dt: Datatype, size: *mut c_int) -> c_int = dtype::type_size;
            fn Type_get_extent(dt: Datatype, lb: *mut isize, extent: *mut isize) -> c_int = dtype::type_get_extent;
            fn Type_get_true_extent(dt: Datatype, lb: *mut isize, extent: *mut isize) -> c_int = dtype::type_get_true_extent;
            fn Type_set_name(dt: Datatype, name: *const c_char) -> c_int = dtype::type_set_name;
            fn Type_get_name(dt: Datatype, name: *mut c_char, len: *mut c_int) -> c_int = dtype::type_get_name;
            fn Get_address(location: *const c_void, address: *mut isize) -> c_int = dtype::get_address;
            fn Pack(inbuf: *const c_void, count: c_int, dt: Datatype, outbuf: *mut c_void, outsize: c_int, position: *mut c_int, comm: Comm) -> c_int = dtype::pack;
            fn Unpack(inbuf: *const c_void, insize: c_int, position: *mut c_int, outbuf: *mut c_void, count: c_int, dt: Datatype, comm: Comm) -> c_int = dtype::unpack;
            fn Pack_size(count: c_int, dt: Datatype, comm: Comm, size: *mut c_int) -> c_int = dtype::pack_size;
            // MPI-1 names that MPI-3.0 removed and MPICH still exports (older programs call them).
            fn Address(location: *const c_void, address: *mut isize) -> c_int = dtype::get_address;
            fn Type_hvector(count: c_int, blocklen: c_int, stride: isize, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_hvector;
            fn Type_hindexed(count: c_int, blocklens: *const c_int, displs: *const isize, old: Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_hindexed;
            fn Type_struct(count: c_int, blocklens: *const c_int, displs: *const isize, types: *const Datatype, newtype: *mut Datatype) -> c_int = dtype::type_create_struct;
            fn Type_extent(dt: Datatype, extent: *mut isize) -> c_int = dtype::type_extent;
            fn Type_lb(dt: Datatype, lb: *mut isize) -> c_int = dtype::type_lb;
            fn Type_ub(dt: Datatype, ub: *mut isize) -> c_int = dtype::type_ub;
            fn Errhandler_create(f: usize, h: *mut Errhandler) -> c_int = comm::comm_create_errhandler;
            fn Errhandler_set(comm: Comm, h: Errhandler) -> c_int = comm::comm_set_errhandler;
            fn Errhandler_get(comm: Comm, h: *mut Errhandler) -> c_int = comm::comm_get_errhandler;
            // Collectives.
            fn Barrier(comm: Comm) -> c_int = coll::barrier;
            fn Bcast(buf: *mut c_void, count: c_int, dt: Datatype, root: c_int, comm: Comm) -> c_int = coll::bcast;
            fn Reduce(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, root: c_int, comm: Comm) -> c_int = coll::reduce;
            fn Allreduce(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, comm: Comm) -> c_int = coll::allreduce;
            fn Ibarrier(comm: Comm, req: *mut Request) -> c_int = coll::ibarrier;
            fn Ibcast(buf: *mut c_void, count: c_int, dt: Datatype, root: c_int, comm: Comm, req: *mut Request) -> c_int = coll::ibcast;
            fn Ireduce(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, root: c_int, comm: Comm, req: *mut Request) -> c_int = coll::ireduce;
            fn Iallreduce(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, comm: Comm, req: *mut Request) -> c_int = coll::iallreduce;
            fn Scan(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, comm: Comm) -> c_int = coll::scan;
            fn Iscan(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, comm: Comm, req: *mut Request) -> c_int = coll::iscan;
            fn Exscan(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, comm: Comm) -> c_int = coll::exscan;
            fn Iexscan(sbuf: *const c_void, rbuf: *mut c_void, count: c_int, dt: Datatype, op: Op, comm: Comm, req: *mut Request) -> c_int = coll::iexscan;
            fn Reduce_scatter(sbuf: *const c_void, rbuf: *mut c_void, rcounts: *const c_int, dt: Datatype, op: Op, comm: Comm) -> c_int = coll::reduce_scatter;
            fn Ireduce_scatter(sbuf: *const c_void, rbuf: *mut c_void, rcounts: *const c_int, dt: Datatype, op: Op, comm: Comm, req: *mut Request) -> c_int = coll::ireduce_scatter;
            fn Reduce_scatter_block(sbuf: *const c_void, rbuf: *mut c_void, rcount: c_int, dt: Datatype, op: Op, comm: Comm) -> c_int = coll::reduce_scatter_block;
            fn Ireduce_scatter_block(sbuf: *const c_void, rbuf: *mut c_void, rcount: c_int, dt: Datatype, op: Op, comm: Comm, req: *mut Request) -> c_int = coll::ireduce_scatter_block;
            fn Gather(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, root: c_int, comm: Comm) -> c_int = coll::gather;
            fn Igather(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, root: c_int, comm: Comm, req: *mut Request) -> c_int = coll::igather;
            fn Gatherv(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcounts: *const c_int, displs: *const c_int, rdt: Datatype, root: c_int, comm: Comm) -> c_int = coll::gatherv;
            fn Igatherv(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcounts: *const c_int, displs: *const c_int, rdt: Datatype, root: c_int, comm: Comm, req: *mut Request) -> c_int = coll::igatherv;
            fn Scatter(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, root: c_int, comm: Comm) -> c_int = coll::scatter;
            fn Iscatter(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, root: c_int, comm: Comm, req: *mut Request) -> c_int = coll::iscatter;
            fn Scatterv(sbuf: *const c_void, scounts: *const c_int, displs: *const c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, root: c_int, comm: Comm) -> c_int = coll::scatterv;
            fn Iscatterv(sbuf: *const c_void, scounts: *const c_int, displs: *const c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, root: c_int, comm: Comm, req: *mut Request) -> c_int = coll::iscatterv;
            fn Allgather(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, comm: Comm) -> c_int = coll::allgather;
            fn Iallgather(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, comm: Comm, req: *mut Request) -> c_int = coll::iallgather;
            fn Allgatherv(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcounts: *const c_int, displs: *const c_int, rdt: Datatype, comm: Comm) -> c_int = coll::allgatherv;
            fn Iallgatherv(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcounts: *const c_int, displs: *const c_int, rdt: Datatype, comm: Comm, req: *mut Request) -> c_int = coll::iallgatherv;
            fn Alltoall(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, comm: Comm) -> c_int = coll::alltoall;
            fn Ialltoall(sbuf: *const c_void, scount: c_int, sdt: Datatype, rbuf: *mut c_void, rcount: c_int, rdt: Datatype, comm: Comm, req: *mut Request) -> c_int = coll::ialltoall;
            fn Alltoallv(sbuf: *const c_void, scounts: *const c_int, sdispls: *const c_int, sdt: Datatype, rbuf: *mut c_void, rcounts: *const c_int, rdispls: *const c_int, rdt: Datatype, comm: Comm) -> c_int = coll::alltoallv;
            fn Ialltoallv(sbuf: *const c_void, scounts: *const c_int, sdispls: *const c_int, sdt: Datatype, rbuf: *mut c_void, rcounts: *const c_int, rdispls: *const c_int, rdt: Datatype, comm: Comm, req: *mut Request) -> c_int = coll::ialltoallv;
            fn Alltoallw(sbuf: *const c_void, scounts: *const c_int, sdispls: *const c_int, sdts: *const Datatype, rbuf: *mut c_void, rcounts: *const c_int, rdispls: *const c_int, rdts: *const Datatype, comm: Comm) -> c_int = coll::alltoallw;
            fn Ialltoallw(sbuf: *const c_void, scounts: *const c_int, sdispls: *const c_int, sdts: *const Datatype, rbuf: *mut c_void, rcounts: *const c_int, rdispls: *const c_int, rdts: *const Datatype, comm: Comm, req: *mut Request) -> c_int = coll::ialltoallw;
            fn Reduce_local(inbuf: *const c_void, inoutbuf: *mut c_void, count: c_int, dt: Datatype, op: Op) -> c_int = reduction::reduce_local;
            fn Op_create(f: usize, commute: c_int, op: *mut Op) -> c_int = reduction::op_create;
            fn Op_free(op: *mut Op) -> c_int = reduction::op_free;
            fn Op_commutative(op: Op, commute: *mut c_int) -> c_int = reduction::op_commutative;
        }
    };
    (@list $face:ty; $( fn $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty = $m:ident :: $f:ident ; )* ) => {
        /// The `PMPI_` functions (the implementation).
        #[allow(non_snake_case, clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref, clippy::too_many_arguments)]
        pub mod pmpi {
            use super::*;
            #[allow(unused_imports)]
            use ::std::ffi::{c_char, c_double, c_int, c_void};
            $(
                #[doc = concat!("PMPI_", stringify!($name), ".")]
                #[export_name = concat!("PMPI_", stringify!($name))]
                pub extern "C" fn $name($($a: $t),*) -> $r {
                    $crate::c::$m::$f::<$face>($($a),*)
                }
            )*
        }
        /// The `MPI_` functions: each calls its `PMPI_` one, so a tool defining `MPI_X` can reach
        /// the implementation as `PMPI_X`.
        #[allow(non_snake_case, clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref, clippy::too_many_arguments)]
        pub mod mpi {
            use super::*;
            #[allow(unused_imports)]
            use ::std::ffi::{c_char, c_double, c_int, c_void};
            $(
                #[doc = concat!("MPI_", stringify!($name), ".")]
                #[export_name = concat!("MPI_", stringify!($name))]
                pub extern "C" fn $name($($a: $t),*) -> $r {
                    super::pmpi::$name($($a),*)
                }
            )*
        }
    };
}
