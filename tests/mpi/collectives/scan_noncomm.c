/* Scan, Exscan, Reduce, Allreduce, Reduce_scatter and Reduce_scatter_block with a
 * non-commutative user operation (2x2 matrix product mod 1009 over a derived
 * contiguous type), which must combine in rank order, plus MPI_SUM with
 * MPI_IN_PLACE.  References are computed in plain C; rank 0 prints one
 * deterministic line per checked case. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define P 1009
typedef struct { int m[4]; } mat;

static mat mul(mat a, mat b) {
    mat c;
    c.m[0] = (a.m[0] * b.m[0] + a.m[1] * b.m[2]) % P;
    c.m[1] = (a.m[0] * b.m[1] + a.m[1] * b.m[3]) % P;
    c.m[2] = (a.m[2] * b.m[0] + a.m[3] * b.m[2]) % P;
    c.m[3] = (a.m[2] * b.m[1] + a.m[3] * b.m[3]) % P;
    return c;
}

/* inout[i] = in[i] * inout[i]: in holds the lower ranks. */
static void matmul_op(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    mat *a = in, *b = inout;
    for (int i = 0; i < *len; i++) b[i] = mul(a[i], b[i]);
}

static mat elem(int rank, int i) {
    mat x = {{rank + 1, i + 2, (rank * 3 + i) % 5, 1}};
    return x;
}

static int same(mat a, mat b) {
    for (int k = 0; k < 4; k++)
        if (a.m[k] != b.m[k]) return 0;
    return 1;
}

static void fail(MPI_Comm comm, const char *what, int i) {
    fprintf(stderr, "MISMATCH %s index=%d\n", what, i);
    MPI_Abort(comm, 1);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Datatype mt;
    MPI_Type_contiguous(4, MPI_INT, &mt);
    MPI_Type_commit(&mt);
    MPI_Op op;
    MPI_Op_create(matmul_op, 0, &op);
    int commute = -1;
    MPI_Op_commutative(op, &commute);
    if (commute != 0) fail(MPI_COMM_WORLD, "op_commutative", 0);

    const int n = 3 * size; /* divisible by size for Reduce_scatter_block */
    mat *send = malloc(sizeof(mat) * (size_t)n);
    mat *recv = malloc(sizeof(mat) * (size_t)n);
    mat *want = malloc(sizeof(mat) * (size_t)n);
    for (int i = 0; i < n; i++) send[i] = elem(rank, i);

    /* Scan: product of ranks 0..rank. */
    MPI_Scan(send, recv, n, mt, op, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++) {
        want[i] = elem(0, i);
        for (int r = 1; r <= rank; r++) want[i] = mul(want[i], elem(r, i));
        if (!same(recv[i], want[i])) fail(MPI_COMM_WORLD, "scan", i);
    }
    if (rank == 0) printf("scan noncommutative ok\n");

    /* Exscan: product of ranks 0..rank-1 (undefined on rank 0). */
    MPI_Exscan(send, recv, n, mt, op, MPI_COMM_WORLD);
    if (rank > 0)
        for (int i = 0; i < n; i++) {
            want[i] = elem(0, i);
            for (int r = 1; r < rank; r++) want[i] = mul(want[i], elem(r, i));
            if (!same(recv[i], want[i])) fail(MPI_COMM_WORLD, "exscan", i);
        }
    if (rank == 0) printf("exscan noncommutative ok\n");

    /* Full product, for Reduce at every root, Allreduce, Reduce_scatter_block. */
    for (int i = 0; i < n; i++) {
        want[i] = elem(0, i);
        for (int r = 1; r < size; r++) want[i] = mul(want[i], elem(r, i));
    }
    for (int root = 0; root < size; root++) {
        MPI_Reduce(send, recv, n, mt, op, root, MPI_COMM_WORLD);
        if (rank == root)
            for (int i = 0; i < n; i++)
                if (!same(recv[i], want[i])) fail(MPI_COMM_WORLD, "reduce", i);
    }
    if (rank == 0) printf("reduce noncommutative ok\n");
    MPI_Allreduce(send, recv, n, mt, op, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++)
        if (!same(recv[i], want[i])) fail(MPI_COMM_WORLD, "allreduce", i);
    if (rank == 0) printf("allreduce noncommutative ok\n");
    MPI_Reduce_scatter_block(send, recv, 3, mt, op, MPI_COMM_WORLD);
    for (int i = 0; i < 3; i++)
        if (!same(recv[i], want[rank * 3 + i])) fail(MPI_COMM_WORLD, "reduce_scatter_block", i);
    if (rank == 0) printf("reduce_scatter_block noncommutative ok\n");

    /* Large enough (47 KiB and 63 KiB) for the ranks to split the work between them: the
     * product still in rank order, and MPI_MINLOC on a pair type whose elements end in a gap
     * (long double, int). */
    {
        const int big = 3001, pairs = 2001;
        mat *bs = malloc(sizeof(mat) * (size_t)big), *br = malloc(sizeof(mat) * (size_t)big);
        for (int i = 0; i < big; i++) bs[i] = elem(rank, i);
        MPI_Allreduce(bs, br, big, mt, op, MPI_COMM_WORLD);
        for (int i = 0; i < big; i++) {
            mat w = elem(0, i);
            for (int r = 1; r < size; r++) w = mul(w, elem(r, i));
            if (!same(br[i], w)) fail(MPI_COMM_WORLD, "allreduce-large", i);
        }
        if (rank == 0) printf("allreduce noncommutative %d elements ok\n", big);
        struct ldi { long double v; int i; } *ls = malloc(sizeof(struct ldi) * (size_t)pairs),
                                            *lr = malloc(sizeof(struct ldi) * (size_t)pairs);
        for (int i = 0; i < pairs; i++) {
            ls[i].v = (long double)((rank * 7 + i) % 11);
            ls[i].i = rank;
        }
        MPI_Allreduce(ls, lr, pairs, MPI_LONG_DOUBLE_INT, MPI_MINLOC, MPI_COMM_WORLD);
        for (int i = 0; i < pairs; i++) {
            int best = 0;
            for (int r = 1; r < size; r++)
                if ((r * 7 + i) % 11 < (best * 7 + i) % 11) best = r;
            if (lr[i].v != (long double)((best * 7 + i) % 11) || lr[i].i != best)
                fail(MPI_COMM_WORLD, "allreduce-minloc-large", i);
        }
        if (rank == 0) printf("allreduce minloc %d long double pairs ok\n", pairs);
        free(bs);
        free(br);
        free(ls);
        free(lr);
    }

    /* Reduce_scatter with uneven counts, empty ones among them (ranks 1, 4, ...): each rank's
     * block is the product of every rank's elements there, in rank order. */
    {
        int *rc = malloc(sizeof(int) * (size_t)size), tot = 0, off = 0;
        for (int r = 0; r < size; r++) {
            rc[r] = r % 3 == 1 ? 0 : 2 * r + 1;
            tot += rc[r];
        }
        for (int r = 0; r < rank; r++) off += rc[r];
        mat *s2 = malloc(sizeof(mat) * (size_t)tot), *r2 = malloc(sizeof(mat) * (size_t)(rc[rank] + 1));
        for (int i = 0; i < tot; i++) s2[i] = elem(rank, i);
        MPI_Reduce_scatter(s2, r2, rc, mt, op, MPI_COMM_WORLD);
        for (int i = 0; i < rc[rank]; i++) {
            mat w = elem(0, off + i);
            for (int r = 1; r < size; r++) w = mul(w, elem(r, off + i));
            if (!same(r2[i], w)) fail(MPI_COMM_WORLD, "reduce_scatter-uneven", i);
        }
        if (rank == 0) printf("reduce_scatter noncommutative uneven ok\n");
        free(rc);
        free(s2);
        free(r2);
    }

    /* MPI_SUM with MPI_IN_PLACE: Scan and Allreduce. */
    long v = rank + 1, s = 0;
    MPI_Scan(MPI_IN_PLACE, &v, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    for (int r = 0; r <= rank; r++) s += r + 1;
    if (v != s) fail(MPI_COMM_WORLD, "scan-inplace", 0);
    if (rank == 0) printf("scan in-place ok\n");

    MPI_Op_free(&op);
    if (op != MPI_OP_NULL) fail(MPI_COMM_WORLD, "op_free", 0);
    MPI_Type_free(&mt);
    free(send);
    free(recv);
    free(want);
    if (rank == 0) printf("scan_noncomm: ok\n");
    MPI_Finalize();
    return 0;
}
