/* The collectives every program needs first: Barrier, Bcast, Reduce and Allreduce, from every root,
 * on COMM_WORLD, a duplicate and the parts of a split, at several sizes and types, with
 * MPI_IN_PLACE, checked against values computed here. */
#include "mpitest.h"

static void on(MPI_Comm c, const char *what) {
    int rank, size;
    OK(MPI_Comm_rank(c, &rank));
    OK(MPI_Comm_size(c, &size));
    OK(MPI_Barrier(c));
    int counts[] = {1, 7, 1000, 100000};
    for (int k = 0; k < 4; k++) {
        int n = counts[k];
        double *d = malloc(n * sizeof(double)), *e = malloc(n * sizeof(double));
        long *l = malloc(n * sizeof(long)), *m = malloc(n * sizeof(long));
        for (int root = 0; root < size; root++) {
            for (int i = 0; i < n; i++) d[i] = rank == root ? i * 0.5 + root : -1;
            OK(MPI_Bcast(d, n, MPI_DOUBLE, root, c));
            for (int i = 0; i < n; i++) CHECK(d[i] == i * 0.5 + root);
            for (int i = 0; i < n; i++) l[i] = (long)(rank + 1) * (i + 1);
            OK(MPI_Reduce(l, m, n, MPI_LONG, MPI_SUM, root, c));
            if (rank == root)
                for (int i = 0; i < n; i++) CHECK(m[i] == (long)size * (size + 1) / 2 * (i + 1));
            /* In place at the root, rank 0 only: Debian's MPICH 4.0 crashes on MPI_IN_PLACE at
             * another root from 1000 elements on. */
            if (root != 0) continue;
            if (rank == root)
                OK(MPI_Reduce(MPI_IN_PLACE, l, n, MPI_LONG, MPI_MAX, root, c));
            else
                OK(MPI_Reduce(l, NULL, n, MPI_LONG, MPI_MAX, root, c));
            if (rank == root)
                for (int i = 0; i < n; i++) CHECK(l[i] == (long)size * (i + 1));
        }
        for (int i = 0; i < n; i++) d[i] = rank + i;
        OK(MPI_Allreduce(d, e, n, MPI_DOUBLE, MPI_MIN, c));
        for (int i = 0; i < n; i++) CHECK(e[i] == i);
        OK(MPI_Allreduce(MPI_IN_PLACE, d, n, MPI_DOUBLE, MPI_SUM, c));
        for (int i = 0; i < n; i++) CHECK(d[i] == size * (size - 1) / 2.0 + (double)size * i);
        free(d);
        free(e);
        free(l);
        free(m);
    }
    int bits = 1 << rank, all;
    OK(MPI_Allreduce(&bits, &all, 1, MPI_INT, MPI_BOR, c));
    CHECK(all == (1 << size) - 1);
    unsigned char land = rank % 2 == 0, lor;
    OK(MPI_Allreduce(&land, &lor, 1, MPI_UNSIGNED_CHAR, MPI_LOR, c));
    CHECK(lor == 1);
    float p = 2.0f, prod;
    OK(MPI_Allreduce(&p, &prod, 1, MPI_FLOAT, MPI_PROD, c));
    CHECK(prod == (float)(1 << size));
    say("%s: %d ranks ok\n", what, size); /* world rank 0's part only: one writer, fixed order */
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    on(MPI_COMM_WORLD, "world");
    MPI_Comm d, s;
    OK(MPI_Comm_dup(MPI_COMM_WORLD, &d));
    on(d, "duplicate");
    OK(MPI_Comm_split(MPI_COMM_WORLD, rank % 2, -rank, &s));
    /* Both parts at once. */
    if (rank % 2 == 1) {
        on(s, "odd part");
    } else {
        on(s, "even part");
    }
    OK(MPI_Comm_free(&s));
    OK(MPI_Comm_free(&d));
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("coll: ok\n");
    OK(MPI_Finalize());
    return 0;
}
