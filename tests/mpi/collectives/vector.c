/* The v and w forms (Gatherv, Scatterv, Allgatherv, Alltoallv, Alltoallw, Reduce_scatter) with
 * uneven counts (zeros included), displacements out of rank order with gaps, MPI_IN_PLACE, and
 * derived datatypes on one side only (a strided receive type matching a contiguous send), on
 * MPI_COMM_WORLD, a duplicate and a split with reversed keys, every root. References are
 * computed here; rank 0 prints one line per communicator. */
#include "../mpitest.h"

static int val(int from, int to, int i) { return from * 100000 + to * 1000 + i; }

/* Rank r's count towards/from `other` in a v collective: uneven, sometimes 0. */
static int cnt(int r, int other) { return (r * 2 + other) % 4; }

static void run(MPI_Comm comm, const char *name) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int *counts = malloc(sizeof(int) * (size_t)size);
    int *displs = malloc(sizeof(int) * (size_t)size);
    int *rcounts = malloc(sizeof(int) * (size_t)size);
    int *rdispls = malloc(sizeof(int) * (size_t)size);
    const int cap = 4 * size * 3 + 16;
    int *sbuf = malloc(sizeof(int) * (size_t)cap);
    int *rbuf = malloc(sizeof(int) * (size_t)cap);
    MPI_Datatype strided; /* one int every other int: receives spread out */
    MPI_Datatype t;
    OK(MPI_Type_vector(1, 1, 2, MPI_INT, &t));
    OK(MPI_Type_create_resized(t, 0, 2 * (MPI_Aint)sizeof(int), &strided));
    OK(MPI_Type_commit(&strided));
    OK(MPI_Type_free(&t));

    for (int root = 0; root < size; root++) {
        /* Gatherv: rank r sends cnt(r, root) ints; the root lays blocks out in reverse rank
         * order with a gap of one int between them. */
        int at = 1;
        for (int r = size - 1; r >= 0; r--) {
            counts[r] = cnt(r, root);
            displs[r] = at;
            at += counts[r] + 1;
        }
        for (int i = 0; i < cnt(rank, root); i++) sbuf[i] = val(rank, root, i);
        for (int i = 0; i < cap; i++) rbuf[i] = -7;
        OK(MPI_Gatherv(sbuf, cnt(rank, root), MPI_INT, rbuf, counts, displs, MPI_INT, root, comm));
        if (rank == root) {
            for (int r = 0; r < size; r++)
                for (int i = 0; i < counts[r]; i++) CHECK(rbuf[displs[r] + i] == val(r, root, i));
            for (int r = 0; r < size; r++) CHECK(rbuf[displs[r] - 1] == -7); /* gaps untouched */
        }
        /* Gatherv with MPI_IN_PLACE at the root. */
        for (int i = 0; i < cap; i++) rbuf[i] = -7;
        if (rank == root) {
            for (int i = 0; i < counts[rank]; i++) rbuf[displs[rank] + i] = val(rank, root, i);
            OK(MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, rbuf, counts, displs, MPI_INT, root,
                           comm));
            for (int r = 0; r < size; r++)
                for (int i = 0; i < counts[r]; i++) CHECK(rbuf[displs[r] + i] == val(r, root, i));
        } else {
            OK(MPI_Gatherv(sbuf, cnt(rank, root), MPI_INT, NULL, NULL, NULL, MPI_INT, root, comm));
        }
        /* Gather into a strided receive type: rank r's 3 ints land at every other int. */
        for (int i = 0; i < 3; i++) sbuf[i] = val(rank, root, i);
        for (int i = 0; i < cap; i++) rbuf[i] = -7;
        OK(MPI_Gather(sbuf, 3, MPI_INT, rbuf, 3, strided, root, comm));
        if (rank == root)
            for (int r = 0; r < size; r++)
                for (int i = 0; i < 3; i++) {
                    CHECK(rbuf[(r * 3 + i) * 2] == val(r, root, i));
                    CHECK(rbuf[(r * 3 + i) * 2 + 1] == -7);
                }

        /* Scatterv: the root sends cnt(r, root) ints to r from reversed, gapped blocks. */
        if (rank == root)
            for (int r = 0; r < size; r++)
                for (int i = 0; i < counts[r]; i++) sbuf[displs[r] + i] = val(root, r, i);
        for (int i = 0; i < cap; i++) rbuf[i] = -7;
        OK(MPI_Scatterv(sbuf, counts, displs, MPI_INT, rbuf, cnt(rank, root), MPI_INT, root, comm));
        for (int i = 0; i < cnt(rank, root); i++) CHECK(rbuf[i] == val(root, rank, i));
        CHECK(rbuf[cnt(rank, root)] == -7);
        /* Scatterv with MPI_IN_PLACE at the root: its own block stays where it is. */
        if (rank == root) {
            OK(MPI_Scatterv(sbuf, counts, displs, MPI_INT, MPI_IN_PLACE, 0, MPI_INT, root, comm));
            for (int i = 0; i < counts[rank]; i++) CHECK(sbuf[displs[rank] + i] == val(root, rank, i));
        } else {
            for (int i = 0; i < cap; i++) rbuf[i] = -7;
            OK(MPI_Scatterv(NULL, NULL, NULL, MPI_INT, rbuf, cnt(rank, root), MPI_INT, root, comm));
            for (int i = 0; i < cnt(rank, root); i++) CHECK(rbuf[i] == val(root, rank, i));
        }
        /* Scatter from a contiguous send into a strided receive type. */
        if (rank == root)
            for (int r = 0; r < size; r++)
                for (int i = 0; i < 2; i++) sbuf[r * 2 + i] = val(root, r, i);
        for (int i = 0; i < cap; i++) rbuf[i] = -7;
        OK(MPI_Scatter(sbuf, 2, MPI_INT, rbuf, 2, strided, root, comm));
        CHECK(rbuf[0] == val(root, rank, 0) && rbuf[1] == -7 && rbuf[2] == val(root, rank, 1));
    }

    /* Allgatherv: rank r contributes cnt(r, 1) ints; blocks reversed with gaps. */
    int at = 0;
    for (int r = size - 1; r >= 0; r--) {
        counts[r] = cnt(r, 1);
        displs[r] = at;
        at += counts[r] + 2;
    }
    for (int i = 0; i < counts[rank]; i++) sbuf[i] = val(rank, 9, i);
    for (int i = 0; i < cap; i++) rbuf[i] = -7;
    OK(MPI_Allgatherv(sbuf, counts[rank], MPI_INT, rbuf, counts, displs, MPI_INT, comm));
    for (int r = 0; r < size; r++)
        for (int i = 0; i < counts[r]; i++) CHECK(rbuf[displs[r] + i] == val(r, 9, i));
    /* In place: each rank's block is already in the receive buffer. */
    for (int i = 0; i < cap; i++) rbuf[i] = -7;
    for (int i = 0; i < counts[rank]; i++) rbuf[displs[rank] + i] = val(rank, 9, i);
    OK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, rbuf, counts, displs, MPI_INT, comm));
    for (int r = 0; r < size; r++)
        for (int i = 0; i < counts[r]; i++) CHECK(rbuf[displs[r] + i] == val(r, 9, i));
    /* Allgather in place with a strided type. */
    for (int i = 0; i < cap; i++) rbuf[i] = -7;
    rbuf[rank * 2] = val(rank, 8, 0);
    OK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, rbuf, 1, strided, comm));
    for (int r = 0; r < size; r++) CHECK(rbuf[r * 2] == val(r, 8, 0) && rbuf[r * 2 + 1] == -7);

    /* Alltoallv: rank s sends cnt(s, d) ints to d; blocks packed in send order, received into
     * reversed blocks with gaps. */
    at = 0;
    for (int d = 0; d < size; d++) {
        counts[d] = cnt(rank, d);
        displs[d] = at;
        for (int i = 0; i < counts[d]; i++) sbuf[at + i] = val(rank, d, i);
        at += counts[d];
    }
    at = 1;
    for (int s = size - 1; s >= 0; s--) {
        rcounts[s] = cnt(s, rank);
        rdispls[s] = at;
        at += rcounts[s] + 1;
    }
    for (int i = 0; i < cap; i++) rbuf[i] = -7;
    OK(MPI_Alltoallv(sbuf, counts, displs, MPI_INT, rbuf, rcounts, rdispls, MPI_INT, comm));
    for (int s = 0; s < size; s++) {
        for (int i = 0; i < rcounts[s]; i++) CHECK(rbuf[rdispls[s] + i] == val(s, rank, i));
        CHECK(rbuf[rdispls[s] - 1] == -7);
    }
    /* Alltoallv in place: symmetric counts (cnt(s,d) == cnt(d,s) is not so: use s+d). */
    at = 0;
    for (int p = 0; p < size; p++) {
        rcounts[p] = (rank + p) % 3;
        rdispls[p] = at;
        for (int i = 0; i < rcounts[p]; i++) rbuf[at + i] = val(rank, p, i);
        at += rcounts[p] + 1;
    }
    OK(MPI_Alltoallv(MPI_IN_PLACE, NULL, NULL, MPI_DATATYPE_NULL, rbuf, rcounts, rdispls, MPI_INT,
                     comm));
    for (int p = 0; p < size; p++)
        for (int i = 0; i < rcounts[p]; i++) CHECK(rbuf[rdispls[p] + i] == val(p, rank, i));

    /* Alltoallw: byte displacements and per-peer types: two ints to every rank, received from
     * odd ranks into the strided type and from even ones contiguously. */
    MPI_Datatype *stypes = malloc(sizeof(MPI_Datatype) * (size_t)size);
    MPI_Datatype *rtypes = malloc(sizeof(MPI_Datatype) * (size_t)size);
    int off = 0;
    for (int d = 0; d < size; d++) {
        counts[d] = 2;
        displs[d] = off * (int)sizeof(int);
        stypes[d] = MPI_INT;
        sbuf[off] = val(rank, d, 0);
        sbuf[off + 1] = val(rank, d, 1);
        off += 2;
    }
    off = 0;
    for (int s = 0; s < size; s++) {
        rdispls[s] = off * (int)sizeof(int);
        if (s % 2) {
            rcounts[s] = 2;
            rtypes[s] = strided;
            off += 4;
        } else {
            rcounts[s] = 2;
            rtypes[s] = MPI_INT;
            off += 2;
        }
    }
    for (int i = 0; i < cap; i++) rbuf[i] = -7;
    OK(MPI_Alltoallw(sbuf, counts, displs, stypes, rbuf, rcounts, rdispls, rtypes, comm));
    for (int s = 0; s < size; s++) {
        int *b = rbuf + rdispls[s] / (int)sizeof(int);
        if (s % 2)
            CHECK(b[0] == val(s, rank, 0) && b[1] == -7 && b[2] == val(s, rank, 1) && b[3] == -7);
        else
            CHECK(b[0] == val(s, rank, 0) && b[1] == val(s, rank, 1));
    }
    free(stypes);
    free(rtypes);

    /* Reduce_scatter: rank r gets (r % 3) + 1 elements of the sum. */
    int total = 0;
    for (int r = 0; r < size; r++) {
        rcounts[r] = r % 3 + 1;
        total += rcounts[r];
    }
    for (int i = 0; i < total; i++) sbuf[i] = rank * 7 + i;
    for (int i = 0; i < cap; i++) rbuf[i] = -7;
    OK(MPI_Reduce_scatter(sbuf, rbuf, rcounts, MPI_INT, MPI_SUM, comm));
    int first = 0;
    for (int r = 0; r < rank; r++) first += rcounts[r];
    for (int i = 0; i < rcounts[rank]; i++)
        CHECK(rbuf[i] == 7 * size * (size - 1) / 2 + size * (first + i));
    CHECK(rbuf[rcounts[rank]] == -7);
    /* In place: the data is in the receive buffer; the result lands at its start. */
    for (int i = 0; i < total; i++) rbuf[i] = rank * 7 + i;
    OK(MPI_Reduce_scatter(MPI_IN_PLACE, rbuf, rcounts, MPI_INT, MPI_SUM, comm));
    for (int i = 0; i < rcounts[rank]; i++)
        CHECK(rbuf[i] == 7 * size * (size - 1) / 2 + size * (first + i));

    OK(MPI_Type_free(&strided));
    free(counts);
    free(displs);
    free(rcounts);
    free(rdispls);
    free(sbuf);
    free(rbuf);
    if (mt_rank() == 0) printf("%s ok\n", name);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    run(MPI_COMM_WORLD, "world");
    MPI_Comm dup, half;
    OK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
    run(dup, "dup");
    OK(MPI_Comm_split(MPI_COMM_WORLD, rank % 2, size - rank, &half));
    run(half, "split");
    OK(MPI_Comm_free(&dup));
    OK(MPI_Comm_free(&half));
    if (rank == 0) printf("vector: ok\n");
    MPI_Finalize();
    return 0;
}
