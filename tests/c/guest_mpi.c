/* A plain MPI program (standard calls only, no SNOO header): built unmodified by Debian's mpicc
 * against libmpi.so.12, and by snoo-mpicc -static against SNOO's standard ABI. The QEMU tests run
 * both builds as 2-rank jobs between two guests.
 *
 * Prints "library: <MPI_Get_library_version>" so that a test can tell which library ran, one
 * "checked: ..." line per verified step, and "rank R of N: guest_mpi ok" at the end. Exits non-zero
 * on any mismatch. Needs at least 2 ranks; ranks above 1 take part in the collectives only. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                \
        }                                                                              \
    } while (0)

/* A pattern that differs per message (seed) and per byte, with no short period. */
static unsigned char pattern(long i, int seed) {
    return (unsigned char)((i * 131 + (i >> 8) * 7 + seed * 29) & 0xff);
}

static long first_bad(const unsigned char *b, long n, int seed) {
    for (long i = 0; i < n; i++)
        if (b[i] != pattern(i, seed)) return i;
    return -1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int liblen = 0;
    MPI_Get_library_version(lib, &liblen);
    /* Only the first line: MPICH's string runs over several. */
    lib[strcspn(lib, "\n")] = '\0';
    printf("rank %d: library: %s\n", rank, lib);
    if (size < 2) {
        fprintf(stderr, "rank %d: needs at least 2 ranks, got %d\n", rank, size);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }

    /* Send/Recv 0 B .. 1 MiB + 3 from rank 0 to rank 1 and back, every byte checked both ways. */
    const long sizes[] = {0, 1, 100, 4096, 65536 + 7, (1L << 20) + 3};
    const int nsizes = (int)(sizeof sizes / sizeof *sizes);
    for (int k = 0; k < nsizes && rank < 2; k++) {
        long n = sizes[k];
        unsigned char *buf = malloc(n + 1);
        MPI_Status st;
        int count = -1;
        if (rank == 0) {
            for (long i = 0; i < n; i++) buf[i] = pattern(i, k);
            MPI_Send(buf, (int)n, MPI_BYTE, 1, 10 + k, MPI_COMM_WORLD);
            memset(buf, 0, n);
            MPI_Recv(buf, (int)n, MPI_BYTE, 1, 20 + k, MPI_COMM_WORLD, &st);
            MPI_Get_count(&st, MPI_BYTE, &count);
            EXPECT(count == n && st.MPI_SOURCE == 1 && st.MPI_TAG == 20 + k);
            /* Rank 1 sent back the pattern of seed k + 1. */
            long bad = first_bad(buf, n, k + 1);
            EXPECT(bad < 0);
            if (bad >= 0) fprintf(stderr, "rank 0: %ld bytes: byte %ld differs\n", n, bad);
        } else {
            MPI_Recv(buf, (int)n, MPI_BYTE, 0, 10 + k, MPI_COMM_WORLD, &st);
            MPI_Get_count(&st, MPI_BYTE, &count);
            EXPECT(count == n && st.MPI_SOURCE == 0 && st.MPI_TAG == 10 + k);
            long bad = first_bad(buf, n, k);
            EXPECT(bad < 0);
            if (bad >= 0) fprintf(stderr, "rank 1: %ld bytes: byte %ld differs\n", n, bad);
            for (long i = 0; i < n; i++) buf[i] = pattern(i, k + 1);
            MPI_Send(buf, (int)n, MPI_BYTE, 0, 20 + k, MPI_COMM_WORLD);
        }
        free(buf);
    }
    if (rank < 2) printf("rank %d: checked: send/recv %d sizes up to %ld bytes\n", rank, nsizes,
                         sizes[nsizes - 1]);

    /* Sendrecv around a ring of ints. */
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    int mine[3] = {rank, rank * 1000, -rank}, theirs[3] = {-1, -1, -1};
    MPI_Status st;
    MPI_Sendrecv(mine, 3, MPI_INT, next, 30, theirs, 3, MPI_INT, prev, 30, MPI_COMM_WORLD, &st);
    EXPECT(theirs[0] == prev && theirs[1] == prev * 1000 && theirs[2] == -prev);
    EXPECT(st.MPI_SOURCE == prev && st.MPI_TAG == 30);
    printf("rank %d: checked: sendrecv from %d\n", rank, theirs[0]);

    /* A duplicate of COMM_WORLD: same ranks, its own context (a message on it does not match a
     * receive on COMM_WORLD with the same tag). */
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    int drank = -1, dsize = -1, cmp = -1;
    MPI_Comm_rank(dup, &drank);
    MPI_Comm_size(dup, &dsize);
    MPI_Comm_compare(MPI_COMM_WORLD, dup, &cmp);
    EXPECT(drank == rank && dsize == size && cmp == MPI_CONGRUENT);
    double dv = -1;
    if (rank == 0) {
        double a = 2.5, b = 7.25;
        MPI_Send(&a, 1, MPI_DOUBLE, 1, 40, dup);
        MPI_Send(&b, 1, MPI_DOUBLE, 1, 40, MPI_COMM_WORLD);
    } else if (rank == 1) {
        /* World's message was sent last but must be the one received on world. */
        MPI_Recv(&dv, 1, MPI_DOUBLE, 0, 40, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        EXPECT(dv == 7.25);
        MPI_Recv(&dv, 1, MPI_DOUBLE, 0, 40, dup, MPI_STATUS_IGNORE);
        EXPECT(dv == 2.5);
    }

    /* Barrier and Allreduce on the duplicate. */
    MPI_Barrier(dup);
    long vals[2] = {rank + 1, (long)rank * rank}, sums[2] = {0, 0};
    MPI_Allreduce(vals, sums, 2, MPI_LONG, MPI_SUM, dup);
    long want0 = (long)size * (size + 1) / 2, want1 = 0;
    for (long r = 0; r < size; r++) want1 += r * r;
    EXPECT(sums[0] == want0 && sums[1] == want1);
    int mx = -1;
    MPI_Allreduce(&rank, &mx, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    EXPECT(mx == size - 1);
    printf("rank %d: checked: comm_dup, barrier, allreduce sum %ld max %d\n", rank, sums[0], mx);
    MPI_Comm_free(&dup);

    /* Everyone learns whether anyone failed, so that no rank reports ok alone. */
    int all_failures = 0;
    MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    if (failures || all_failures) {
        printf("rank %d of %d: guest_mpi FAILED (%d here, %d in all)\n", rank, size, failures,
               all_failures);
        return 1;
    }
    printf("rank %d of %d: guest_mpi ok\n", rank, size);
    return 0;
}
