/* Gather, Scatter, Allgather, Alltoall on MPI_COMM_WORLD and on a split
 * communicator, every root, counts 0, 1 and 7 (odd), with MPI_IN_PLACE where
 * the standard allows it.  Reference results are computed in plain C; rank 0
 * prints one deterministic line per checked case. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static void fail(MPI_Comm comm, const char *what, int root, int count, int i,
                 int got, int want) {
    fprintf(stderr, "MISMATCH %s root=%d count=%d index=%d got=%d want=%d\n",
            what, root, count, i, got, want);
    MPI_Abort(comm, 1);
}

static int val(int rank, int dest, int i) { return rank * 10000 + dest * 100 + i; }

static void check_comm(MPI_Comm comm, const char *name, int world_rank) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    static const int counts[] = {0, 1, 7};
    for (int c = 0; c < 3; c++) {
        int n = counts[c];
        int *send = malloc(sizeof(int) * (size_t)(n * size + 1));
        int *recv = malloc(sizeof(int) * (size_t)(n * size + 1));
        for (int root = 0; root < size; root++) {
            /* Gather */
            for (int i = 0; i < n; i++) send[i] = val(rank, root, i);
            for (int i = 0; i < n * size; i++) recv[i] = -1;
            MPI_Gather(send, n, MPI_INT, recv, n, MPI_INT, root, comm);
            if (rank == root)
                for (int r = 0; r < size; r++)
                    for (int i = 0; i < n; i++)
                        if (recv[r * n + i] != val(r, root, i))
                            fail(comm, "gather", root, n, r * n + i, recv[r * n + i], val(r, root, i));
            /* Gather, IN_PLACE at the root */
            for (int i = 0; i < n * size; i++) recv[i] = -1;
            if (rank == root) {
                for (int i = 0; i < n; i++) recv[rank * n + i] = val(rank, root, i);
                MPI_Gather(MPI_IN_PLACE, n, MPI_INT, recv, n, MPI_INT, root, comm);
                for (int r = 0; r < size; r++)
                    for (int i = 0; i < n; i++)
                        if (recv[r * n + i] != val(r, root, i))
                            fail(comm, "gather-inplace", root, n, r * n + i, recv[r * n + i], val(r, root, i));
            } else {
                MPI_Gather(send, n, MPI_INT, NULL, 0, MPI_INT, root, comm);
            }
            /* Scatter */
            if (rank == root)
                for (int r = 0; r < size; r++)
                    for (int i = 0; i < n; i++) send[r * n + i] = val(root, r, i);
            for (int i = 0; i < n; i++) recv[i] = -1;
            MPI_Scatter(send, n, MPI_INT, recv, n, MPI_INT, root, comm);
            for (int i = 0; i < n; i++)
                if (recv[i] != val(root, rank, i))
                    fail(comm, "scatter", root, n, i, recv[i], val(root, rank, i));
        }
        /* Allgather */
        for (int i = 0; i < n; i++) send[i] = val(rank, 0, i);
        for (int i = 0; i < n * size; i++) recv[i] = -1;
        MPI_Allgather(send, n, MPI_INT, recv, n, MPI_INT, comm);
        for (int r = 0; r < size; r++)
            for (int i = 0; i < n; i++)
                if (recv[r * n + i] != val(r, 0, i))
                    fail(comm, "allgather", -1, n, r * n + i, recv[r * n + i], val(r, 0, i));
        /* Allgather, IN_PLACE */
        for (int i = 0; i < n * size; i++) recv[i] = -1;
        for (int i = 0; i < n; i++) recv[rank * n + i] = val(rank, 1, i);
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, n, MPI_INT, comm);
        for (int r = 0; r < size; r++)
            for (int i = 0; i < n; i++)
                if (recv[r * n + i] != val(r, 1, i))
                    fail(comm, "allgather-inplace", -1, n, r * n + i, recv[r * n + i], val(r, 1, i));
        free(send);
        free(recv);
        /* Alltoall: block for rank d from rank r is val(r, d, i). */
        send = malloc(sizeof(int) * (size_t)(n * size + 1));
        recv = malloc(sizeof(int) * (size_t)(n * size + 1));
        for (int d = 0; d < size; d++)
            for (int i = 0; i < n; i++) send[d * n + i] = val(rank, d, i);
        for (int i = 0; i < n * size; i++) recv[i] = -1;
        MPI_Alltoall(send, n, MPI_INT, recv, n, MPI_INT, comm);
        for (int r = 0; r < size; r++)
            for (int i = 0; i < n; i++)
                if (recv[r * n + i] != val(r, rank, i))
                    fail(comm, "alltoall", -1, n, r * n + i, recv[r * n + i], val(r, rank, i));
        free(send);
        free(recv);
        if (world_rank == 0) printf("%s count=%d ok\n", name, n);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    check_comm(MPI_COMM_WORLD, "world", rank);
    MPI_Comm half;
    /* Odd and even ranks, reversed order inside each half. */
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, size - rank, &half);
    check_comm(half, "split", rank);
    MPI_Comm_free(&half);
    if (rank == 0) printf("gather_scatter: ok\n");
    MPI_Finalize();
    return 0;
}
