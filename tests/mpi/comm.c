/* Communicators and groups: isolation of a duplicate from its original (same source and tag),
 * Comm_split with odd sizes and reversed keys, Comm_split_type(SHARED), Comm_create from a group,
 * Comm_compare, names, the group operations, Comm_free, Cartesian topologies and Dims_create, and
 * the predefined attributes. */
#include "mpitest.h"

static void isolation(int rank, int size) {
    MPI_Comm dup;
    OK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
    int res;
    OK(MPI_Comm_compare(MPI_COMM_WORLD, dup, &res));
    CHECK(res == MPI_CONGRUENT);
    OK(MPI_Comm_compare(dup, dup, &res));
    CHECK(res == MPI_IDENT);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    /* Same source, same tag, on both: the duplicate's message is sent first, but the receive on
     * the original must get the original's. */
    int a = 100 + rank, b = 200 + rank, got_w = -1, got_d = -1;
    MPI_Request r[2];
    OK(MPI_Isend(&b, 1, MPI_INT, next, 5, dup, &r[0]));
    OK(MPI_Isend(&a, 1, MPI_INT, next, 5, MPI_COMM_WORLD, &r[1]));
    OK(MPI_Recv(&got_w, 1, MPI_INT, prev, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    OK(MPI_Recv(&got_d, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, dup, MPI_STATUS_IGNORE));
    OK(MPI_Waitall(2, r, MPI_STATUSES_IGNORE));
    CHECK(got_w == 100 + prev && got_d == 200 + prev);
    /* Nothing crossed over. */
    int flag;
    OK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE));
    CHECK(!flag);
    OK(MPI_Comm_free(&dup));
    CHECK(dup == MPI_COMM_NULL);
    say("isolation: ok\n");
}

static void split(int rank, int size) {
    /* Colours 0,1,2 by rank % 3 (odd sizes), keys reversed: new rank order is reversed. */
    MPI_Comm c;
    OK(MPI_Comm_split(MPI_COMM_WORLD, rank % 3, size - rank, &c));
    int crank, csize;
    OK(MPI_Comm_rank(c, &crank));
    OK(MPI_Comm_size(c, &csize));
    int expect_size = 0, expect_rank = 0;
    for (int r = 0; r < size; r++)
        if (r % 3 == rank % 3) {
            expect_size++;
            if (r > rank) expect_rank++;
        }
    CHECK(csize == expect_size && crank == expect_rank);
    /* Sum of world ranks in each part, through the part. */
    int sum = 0;
    OK(MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, c));
    int expect = 0;
    for (int r = rank % 3; r < size; r += 3) expect += r;
    CHECK(sum == expect);
    /* Point-to-point inside the part uses its ranks. */
    if (csize > 1) {
        int to = (crank + 1) % csize, from = (crank + csize - 1) % csize, v = rank, w;
        MPI_Status st;
        OK(MPI_Sendrecv(&v, 1, MPI_INT, to, 0, &w, 1, MPI_INT, from, 0, c, &st));
        /* Reversed keys: part rank `from` is the next higher world rank of this colour. */
        CHECK(st.MPI_SOURCE == from && w % 3 == rank % 3);
        CHECK(w == (crank == 0 ? rank % 3 : rank + 3));
    }
    OK(MPI_Comm_free(&c));
    /* MPI_UNDEFINED: no communicator. */
    OK(MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? MPI_UNDEFINED : 1, 0, &c));
    if (rank == 0)
        CHECK(c == MPI_COMM_NULL);
    else
        OK(MPI_Comm_free(&c));
    say("split: %d parts, reversed keys ok\n", size < 3 ? size : 3);
}

static void split_type_and_create(int rank, int size) {
    MPI_Comm shm;
    OK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shm));
    int s;
    OK(MPI_Comm_size(shm, &s));
    CHECK(s >= 1 && s <= size);
    OK(MPI_Comm_free(&shm));
    /* The even ranks, through a group. */
    MPI_Group world, even;
    OK(MPI_Comm_group(MPI_COMM_WORLD, &world));
    int n = (size + 1) / 2, ranks[4];
    for (int i = 0; i < n; i++) ranks[i] = 2 * i;
    OK(MPI_Group_incl(world, n, ranks, &even));
    MPI_Comm c;
    OK(MPI_Comm_create(MPI_COMM_WORLD, even, &c));
    if (rank % 2 == 0) {
        int cr, cs;
        OK(MPI_Comm_rank(c, &cr));
        OK(MPI_Comm_size(c, &cs));
        CHECK(cr == rank / 2 && cs == n);
        int sum;
        OK(MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, c));
        CHECK(sum == n * (n - 1));
        OK(MPI_Comm_free(&c));
    } else {
        CHECK(c == MPI_COMM_NULL);
    }
    OK(MPI_Group_free(&even));
    OK(MPI_Group_free(&world));
    CHECK(world == MPI_GROUP_NULL);
    say("split_type and create: ok\n");
}

static void groups(int rank, int size) {
    MPI_Group w, a, b, u, i, d, e;
    OK(MPI_Comm_group(MPI_COMM_WORLD, &w));
    int gs, gr;
    OK(MPI_Group_size(w, &gs));
    OK(MPI_Group_rank(w, &gr));
    CHECK(gs == size && gr == rank);
    int first[1] = {0};
    OK(MPI_Group_incl(w, 1, first, &a));
    OK(MPI_Group_excl(w, 1, first, &b));
    OK(MPI_Group_union(b, a, &u));
    OK(MPI_Group_intersection(w, a, &i));
    OK(MPI_Group_difference(w, a, &d));
    int us, is, ds, res;
    OK(MPI_Group_size(u, &us));
    OK(MPI_Group_size(i, &is));
    OK(MPI_Group_size(d, &ds));
    CHECK(us == size && is == 1 && ds == size - 1);
    OK(MPI_Group_compare(w, u, &res));
    CHECK(res == (size == 1 ? MPI_IDENT : MPI_SIMILAR));
    OK(MPI_Group_compare(w, w, &res));
    CHECK(res == MPI_IDENT);
    /* In the union, rank 0 of world comes last. */
    int from[4] = {0, 1, 2, 3}, to[4];
    OK(MPI_Group_translate_ranks(w, size, from, u, to));
    CHECK(to[0] == size - 1);
    for (int k = 1; k < size; k++) CHECK(to[k] == k - 1);
    OK(MPI_Group_translate_ranks(w, 1, from, d, to));
    CHECK(to[0] == MPI_UNDEFINED);
    int rr;
    OK(MPI_Group_rank(d, &rr));
    CHECK(rr == (rank == 0 ? MPI_UNDEFINED : rank - 1));
    OK(MPI_Group_difference(a, w, &e));
    int es;
    OK(MPI_Group_size(e, &es));
    CHECK(es == 0);
    MPI_Group gs_list[] = {w, a, b, u, i, d, e};
    for (int k = 0; k < 7; k++) OK(MPI_Group_free(&gs_list[k]));
    say("groups: ok\n");
}

static void names_and_attrs(void) {
    char name[MPI_MAX_OBJECT_NAME];
    int len;
    OK(MPI_Comm_get_name(MPI_COMM_WORLD, name, &len));
    CHECK(strcmp(name, "MPI_COMM_WORLD") == 0 && len == 14);
    MPI_Comm d;
    OK(MPI_Comm_dup(MPI_COMM_WORLD, &d));
    OK(MPI_Comm_set_name(d, "my duplicate"));
    OK(MPI_Comm_get_name(d, name, &len));
    CHECK(strcmp(name, "my duplicate") == 0 && len == 12);
    OK(MPI_Comm_free(&d));
    int *ub, flag;
    OK(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag));
    CHECK(flag && *ub >= 32767);
    int *wtg;
    OK(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_WTIME_IS_GLOBAL, &wtg, &flag));
    CHECK(!flag || *wtg == 0 || *wtg == 1);
    say("names and attributes: ok\n");
}

static void cart(int rank, int size) {
    int dims[2] = {0, 0};
    OK(MPI_Dims_create(size, 2, dims));
    CHECK(dims[0] * dims[1] == size && dims[0] >= dims[1]);
    int d3[3] = {0, 2, 0};
    if (size % 2 == 0) {
        OK(MPI_Dims_create(size, 3, d3));
        CHECK(d3[1] == 2 && d3[0] * d3[1] * d3[2] == size);
    }
    int periods[2] = {1, 0};
    MPI_Comm c;
    OK(MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &c));
    int cr, coords[2], back;
    OK(MPI_Comm_rank(c, &cr));
    OK(MPI_Cart_coords(c, cr, 2, coords));
    OK(MPI_Cart_rank(c, coords, &back));
    CHECK(back == cr && coords[0] == cr / dims[1] && coords[1] == cr % dims[1]);
    int src, dst;
    OK(MPI_Cart_shift(c, 0, 1, &src, &dst));
    CHECK(dst == ((coords[0] + 1) % dims[0]) * dims[1] + coords[1]); /* periodic */
    OK(MPI_Cart_shift(c, 1, 1, &src, &dst));
    CHECK(dst == (coords[1] + 1 < dims[1] ? cr + 1 : MPI_PROC_NULL));
    CHECK(src == (coords[1] > 0 ? cr - 1 : MPI_PROC_NULL));
    /* A shift's neighbours exchange through the topology. */
    int v = rank, w = -1;
    OK(MPI_Sendrecv(&v, 1, MPI_INT, dst, 0, &w, 1, MPI_INT, src, 0, c, MPI_STATUS_IGNORE));
    CHECK(src == MPI_PROC_NULL ? w == -1 : w == src);
    int topo;
    OK(MPI_Topo_test(c, &topo));
    CHECK(topo == MPI_CART);
    OK(MPI_Comm_free(&c));
    say("cart: %d x %d ok\n", dims[0], dims[1]);
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    say("comm on %d ranks\n", size);
    isolation(rank, size);
    split(rank, size);
    split_type_and_create(rank, size);
    groups(rank, size);
    names_and_attrs();
    cart(rank, size);
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("comm: ok\n");
    OK(MPI_Finalize());
    return 0;
}
