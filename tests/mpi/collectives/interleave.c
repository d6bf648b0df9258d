/* Collectives on two communicators interleaved with point-to-point traffic on
 * the same communicators and tags: a receive posted before a collective must
 * not match collective traffic, and the collective must not consume it. */
#include <mpi.h>
#include <stdio.h>

static void fail(const char *what, int got, int want) {
    fprintf(stderr, "MISMATCH %s got=%d want=%d\n", what, got, want);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    for (int round = 0; round < 4; round++) {
        for (int tag = 0; tag < 3; tag++) {
            int in = -1, out = rank * 100 + tag, b = -1, s = 0, d = -1;
            MPI_Request rq[2];
            MPI_Irecv(&in, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &rq[0]);
            if (rank == round % size) b = 1000 + round;
            MPI_Bcast(&b, 1, MPI_INT, round % size, MPI_COMM_WORLD);
            if (b != 1000 + round) fail("bcast", b, 1000 + round);
            if (rank == (round + 1) % size) d = 2000 + round;
            MPI_Bcast(&d, 1, MPI_INT, (round + 1) % size, dup);
            if (d != 2000 + round) fail("bcast-dup", d, 2000 + round);
            MPI_Isend(&out, 1, MPI_INT, next, tag, MPI_COMM_WORLD, &rq[1]);
            int one = 1;
            MPI_Allreduce(&one, &s, 1, MPI_INT, MPI_SUM, dup);
            if (s != size) fail("allreduce-dup", s, size);
            MPI_Status st[2];
            MPI_Waitall(2, rq, st);
            if (in != prev * 100 + tag) fail("p2p", in, prev * 100 + tag);
            MPI_Barrier(MPI_COMM_WORLD);
        }
    }
    MPI_Comm_free(&dup);
    if (rank == 0) printf("interleave: ok\n");
    MPI_Finalize();
    return 0;
}
