/* Derived datatypes: each sent with one type map and received with a different but matching one
 * (vector into contiguous, struct into indexed, subarray into vector, ...), sizes and extents,
 * Pack/Unpack, Get_elements on a partial receive, and the MINLOC/MAXLOC pair types. */
#include "mpitest.h"
#include <stddef.h>

/* Sends `sbuf` as (n, st) from rank 0 to the last rank, which receives into `rbuf` as (m, rt);
 * in a job of one, to itself. */
static void xfer(const void *sbuf, int n, MPI_Datatype st, void *rbuf, int m, MPI_Datatype rt,
                 MPI_Status *status) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int last = size - 1;
    if (rank == 0) {
        MPI_Request r;
        OK(MPI_Isend(sbuf, n, st, last, 0, MPI_COMM_WORLD, &r));
        if (last == 0) OK(MPI_Recv(rbuf, m, rt, 0, 0, MPI_COMM_WORLD, status));
        OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    } else if (rank == last) {
        OK(MPI_Recv(rbuf, m, rt, 0, 0, MPI_COMM_WORLD, status));
    }
    /* Rank 0 reports; the receiver's result travels back to it. */
    if (last != 0) {
        int rn = 0;
        if (rank == last) OK(MPI_Get_elements(status, rt, &rn));
        OK(MPI_Bcast(&rn, 1, MPI_INT, last, MPI_COMM_WORLD));
    }
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int last = size - 1, me_recv = rank == last;
    say("datatype on %d ranks\n", size);

    /* Vector (every other int of 20) into 10 contiguous ints. */
    int a[20], b[10];
    for (int i = 0; i < 20; i++) a[i] = i * 3;
    MPI_Datatype vec, cont;
    OK(MPI_Type_vector(10, 1, 2, MPI_INT, &vec));
    OK(MPI_Type_commit(&vec));
    OK(MPI_Type_contiguous(10, MPI_INT, &cont));
    OK(MPI_Type_commit(&cont));
    int sz;
    MPI_Aint lb, ext;
    OK(MPI_Type_size(vec, &sz));
    OK(MPI_Type_get_extent(vec, &lb, &ext));
    CHECK(sz == 40 && lb == 0 && ext == 19 * 4);
    MPI_Status st;
    memset(b, 0, sizeof b);
    xfer(a, 1, vec, b, 1, cont, &st);
    if (me_recv)
        for (int i = 0; i < 10; i++) CHECK(b[i] == i * 6);
    say("vector -> contiguous: size %d extent %ld\n", sz, (long)ext);

    /* Struct {int; double; char[3]} with padding, received as indexed bytes of the same layout. */
    struct s { int i; double d; char c[3]; } sv[2] = {{1, 2.5, "ab"}, {3, -4.25, "cd"}}, rv[2];
    int bl[3] = {1, 1, 3};
    MPI_Aint disp[3] = {offsetof(struct s, i), offsetof(struct s, d), offsetof(struct s, c)};
    MPI_Datatype types[3] = {MPI_INT, MPI_DOUBLE, MPI_CHAR}, stype, stype_r;
    OK(MPI_Type_create_struct(3, bl, disp, types, &stype));
    OK(MPI_Type_create_resized(stype, 0, sizeof(struct s), &stype_r));
    OK(MPI_Type_commit(&stype_r));
    OK(MPI_Type_size(stype_r, &sz));
    OK(MPI_Type_get_extent(stype_r, &lb, &ext));
    CHECK(sz == 4 + 8 + 3 && ext == (MPI_Aint)sizeof(struct s));
    memset(rv, 0, sizeof rv);
    MPI_Datatype dup;
    OK(MPI_Type_dup(stype_r, &dup));
    OK(MPI_Type_commit(&dup));
    xfer(sv, 2, stype_r, rv, 2, dup, &st);
    if (me_recv)
        CHECK(rv[0].i == 1 && rv[0].d == 2.5 && strcmp(rv[1].c, "cd") == 0 && rv[1].d == -4.25);
    say("struct: size %d extent %ld\n", sz, (long)ext);

    /* Subarray (2x3 block at (1,1) of a 4x5 matrix) into hvector, and indexed_block. */
    double m[4][5], blk[2][3];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) m[i][j] = i * 10 + j;
    int sizes[2] = {4, 5}, subs[2] = {2, 3}, starts[2] = {1, 1};
    MPI_Datatype sub, hv, row;
    OK(MPI_Type_create_subarray(2, sizes, subs, starts, MPI_ORDER_C, MPI_DOUBLE, &sub));
    OK(MPI_Type_commit(&sub));
    OK(MPI_Type_contiguous(3, MPI_DOUBLE, &row));
    OK(MPI_Type_create_hvector(2, 1, 3 * sizeof(double), row, &hv));
    OK(MPI_Type_commit(&hv));
    memset(blk, 0, sizeof blk);
    xfer(m, 1, sub, blk, 1, hv, &st);
    if (me_recv) CHECK(blk[0][0] == 11 && blk[0][2] == 13 && blk[1][0] == 21 && blk[1][2] == 23);
    int displs[3] = {4, 0, 2};
    MPI_Datatype ib;
    OK(MPI_Type_create_indexed_block(3, 2, displs, MPI_SHORT, &ib));
    OK(MPI_Type_commit(&ib));
    short sh[6] = {10, 11, 12, 13, 14, 15}, shr[6];
    xfer(sh, 1, ib, shr, 6, MPI_SHORT, &st);
    if (me_recv) CHECK(shr[0] == 14 && shr[1] == 15 && shr[2] == 10 && shr[4] == 12);
    int ibl[2] = {2, 1}, idisp[2] = {3, 0};
    MPI_Datatype ix;
    OK(MPI_Type_indexed(2, ibl, idisp, MPI_INT, &ix));
    OK(MPI_Type_commit(&ix));
    int src5[5] = {7, 8, 9, 10, 11}, dst3[3];
    xfer(src5, 1, ix, dst3, 3, MPI_INT, &st);
    if (me_recv) CHECK(dst3[0] == 10 && dst3[1] == 11 && dst3[2] == 7);
    say("subarray, hvector, indexed: ok\n");

    /* A partial receive of a derived type: Get_elements counts basic elements. */
    if (size > 1) {
        int three[3] = {1, 2, 3}, into[20];
        if (rank == 0) OK(MPI_Send(three, 3, MPI_INT, last, 9, MPI_COMM_WORLD));
        if (rank == last) {
            OK(MPI_Recv(into, 2, vec, 0, 9, MPI_COMM_WORLD, &st));
            int count, elems;
            OK(MPI_Get_count(&st, vec, &count));
            OK(MPI_Get_elements(&st, vec, &elems));
            CHECK(count == MPI_UNDEFINED && elems == 3 && into[0] == 1 && into[2] == 2 &&
                  into[4] == 3);
        }
    }

    /* Pack and Unpack. */
    char packed[256];
    int pos = 0, psize;
    OK(MPI_Pack_size(1, vec, MPI_COMM_WORLD, &psize));
    CHECK(psize >= 40 && psize <= 256);
    OK(MPI_Pack(a, 1, vec, packed, sizeof packed, &pos, MPI_COMM_WORLD));
    double pi = 3.25;
    OK(MPI_Pack(&pi, 1, MPI_DOUBLE, packed, sizeof packed, &pos, MPI_COMM_WORLD));
    int unp[10], p2 = 0;
    double pj;
    OK(MPI_Unpack(packed, pos, &p2, unp, 10, MPI_INT, MPI_COMM_WORLD));
    OK(MPI_Unpack(packed, pos, &p2, &pj, 1, MPI_DOUBLE, MPI_COMM_WORLD));
    CHECK(unp[9] == 54 && pj == 3.25 && p2 == pos);
    say("pack: %d bytes\n", pos);

    /* MINLOC/MAXLOC on the pair types. */
    struct { double v; int i; } dv = {(rank * 7) % 5 - 2.0, rank}, dmin, dmax;
    OK(MPI_Allreduce(&dv, &dmin, 1, MPI_DOUBLE_INT, MPI_MINLOC, MPI_COMM_WORLD));
    OK(MPI_Allreduce(&dv, &dmax, 1, MPI_DOUBLE_INT, MPI_MAXLOC, MPI_COMM_WORLD));
    struct { int v; int i; } iv = {rank % 2, rank}, imax;
    OK(MPI_Allreduce(&iv, &imax, 1, MPI_2INT, MPI_MAXLOC, MPI_COMM_WORLD));
    struct { float v; int i; } fv = {-(float)rank, rank}, fmin;
    OK(MPI_Reduce(&fv, &fmin, 1, MPI_FLOAT_INT, MPI_MINLOC, 0, MPI_COMM_WORLD));
    say("minloc %.1f at %d, maxloc %.1f at %d, int maxloc %d at %d, float minloc %.1f at %d\n",
        dmin.v, dmin.i, dmax.v, dmax.i, imax.v, imax.i, fmin.v, fmin.i);

    MPI_Datatype all[] = {vec, cont, stype, stype_r, dup, sub, hv, row, ib, ix};
    for (int i = 0; i < 10; i++) OK(MPI_Type_free(&all[i]));
    CHECK(all[0] == MPI_DATATYPE_NULL);
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("datatype: ok\n");
    OK(MPI_Finalize());
    return 0;
}
