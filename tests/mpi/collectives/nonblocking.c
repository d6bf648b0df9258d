/* Non-blocking collectives: all of them started at once, alternating between MPI_COMM_WORLD and
 * a duplicate, completed in reverse order by MPI_Waitall, by MPI_Test loops and by MPI_Waitany;
 * with point-to-point traffic on the same communicators and tags in between (a receive posted
 * before a collective never takes its messages). References are computed here. */
#include "../mpitest.h"

enum { N = 6, BIG = 70000 };

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm dup;
    OK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
    MPI_Comm c[2] = {MPI_COMM_WORLD, dup};
    int root = size - 1;

    /* A receive from the previous rank with tag 0, posted first on each communicator, and
     * matched by a send made after every collective has started. */
    int ring[2] = {-1, -1};
    MPI_Request p2p[4];
    for (int k = 0; k < 2; k++)
        OK(MPI_Irecv(&ring[k], 1, MPI_INT, (rank + size - 1) % size, 0, c[k], &p2p[k]));

    int bc[N], red[N], allred[N], scan[N], exscan[N], rsb[N];
    int *gat = malloc(sizeof(int) * N * (size_t)size), *sca = malloc(sizeof(int) * N * (size_t)size);
    int *allg = malloc(sizeof(int) * N * (size_t)size), *a2a_s = malloc(sizeof(int) * N * (size_t)size);
    int *a2a_r = malloc(sizeof(int) * N * (size_t)size), *rs_s = malloc(sizeof(int) * N * (size_t)size);
    int *big = malloc(sizeof(int) * BIG), *bigsum = malloc(sizeof(int) * BIG);
    int *counts = malloc(sizeof(int) * (size_t)size), *displs = malloc(sizeof(int) * (size_t)size);
    int *gv = malloc(sizeof(int) * N * (size_t)size);
    int mine[N], sc[N];
    for (int i = 0; i < N; i++) {
        mine[i] = rank * 10 + i;
        bc[i] = rank == root ? 500 + i : -1;
        exscan[i] = -9;
    }
    for (int i = 0; i < N * size; i++) {
        sca[i] = rank == root ? 1000 + i : -1;
        a2a_s[i] = rank * 1000 + i;
        rs_s[i] = rank + i;
    }
    for (int i = 0; i < BIG; i++) big[i] = rank + i % 100;
    for (int r = 0; r < size; r++) {
        counts[r] = r % N;
        displs[r] = r * N;
    }

    MPI_Request q[16];
    int k = 0;
    OK(MPI_Ibarrier(c[k % 2], &q[k])); k++;
    OK(MPI_Ibcast(bc, N, MPI_INT, root, c[k % 2], &q[k])); k++;
    OK(MPI_Ireduce(mine, red, N, MPI_INT, MPI_SUM, root, c[k % 2], &q[k])); k++;
    OK(MPI_Iallreduce(mine, allred, N, MPI_INT, MPI_MAX, c[k % 2], &q[k])); k++;
    OK(MPI_Igather(mine, N, MPI_INT, gat, N, MPI_INT, root, c[k % 2], &q[k])); k++;
    OK(MPI_Iscatter(sca, N, MPI_INT, sc, N, MPI_INT, root, c[k % 2], &q[k])); k++;
    OK(MPI_Iallgather(mine, N, MPI_INT, allg, N, MPI_INT, c[k % 2], &q[k])); k++;
    OK(MPI_Ialltoall(a2a_s, N, MPI_INT, a2a_r, N, MPI_INT, c[k % 2], &q[k])); k++;
    OK(MPI_Iscan(mine, scan, N, MPI_INT, MPI_SUM, c[k % 2], &q[k])); k++;
    OK(MPI_Iexscan(mine, exscan, N, MPI_INT, MPI_SUM, c[k % 2], &q[k])); k++;
    OK(MPI_Ireduce_scatter_block(rs_s, rsb, N, MPI_INT, MPI_SUM, c[k % 2], &q[k])); k++;
    OK(MPI_Igatherv(mine, rank % N, MPI_INT, gv, counts, displs, MPI_INT, 0, c[k % 2], &q[k])); k++;
    OK(MPI_Iallreduce(big, bigsum, BIG, MPI_INT, MPI_SUM, c[k % 2], &q[k])); k++;
    const int nq = k;

    /* Point-to-point on the same communicators and tag while the collectives are in flight. */
    int one[2] = {rank, rank + 100};
    for (int j = 0; j < 2; j++)
        OK(MPI_Isend(&one[j], 1, MPI_INT, (rank + 1) % size, 0, c[j], &p2p[2 + j]));

    /* Complete: the first half by testing in a loop, the rest by Waitall in reverse order. */
    for (int j = 0; j < nq / 2; j++) {
        int flag = 0;
        for (long spins = 0; !flag; spins++) {
            OK(MPI_Test(&q[j], &flag, MPI_STATUS_IGNORE));
            CHECK(spins < 100000000L);
        }
        CHECK(q[j] == MPI_REQUEST_NULL);
    }
    MPI_Request rev[16];
    for (int j = nq / 2; j < nq; j++) rev[nq - 1 - j] = q[j];
    OK(MPI_Waitall(nq - nq / 2, rev, MPI_STATUSES_IGNORE));
    OK(MPI_Waitall(4, p2p, MPI_STATUSES_IGNORE));

    int prev = (rank + size - 1) % size;
    CHECK(ring[0] == prev && ring[1] == prev + 100);
    for (int i = 0; i < N; i++) {
        CHECK(bc[i] == 500 + i);
        if (rank == root) CHECK(red[i] == 10 * size * (size - 1) / 2 + size * i);
        CHECK(allred[i] == (size - 1) * 10 + i);
        CHECK(scan[i] == 10 * rank * (rank + 1) / 2 + (rank + 1) * i);
        if (rank > 0) CHECK(exscan[i] == 10 * rank * (rank - 1) / 2 + rank * i);
        CHECK(sc[i] == 1000 + rank * N + i);
        CHECK(rsb[i] == size * (rank * N + i) + size * (size - 1) / 2);
    }
    for (int r = 0; r < size; r++)
        for (int i = 0; i < N; i++) {
            if (rank == root) CHECK(gat[r * N + i] == r * 10 + i);
            CHECK(allg[r * N + i] == r * 10 + i);
            CHECK(a2a_r[r * N + i] == r * 1000 + rank * N + i);
            if (rank == 0 && i < counts[r]) CHECK(gv[displs[r] + i] == r * 10 + i);
        }
    for (int i = 0; i < BIG; i++) CHECK(bigsum[i] == size * (size - 1) / 2 + size * (i % 100));
    if (rank == 0) printf("all at once ok\n");

    /* Waitany over collectives on both communicators: every one completes exactly once. */
    MPI_Request w[4];
    int b1 = rank, b2 = -1, s1 = rank + 1, s2 = 0;
    OK(MPI_Ibarrier(dup, &w[0]));
    OK(MPI_Iallreduce(&s1, &s2, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &w[1]));
    b2 = rank == 0 ? 77 : -1;
    OK(MPI_Ibcast(&b2, 1, MPI_INT, 0, dup, &w[2]));
    OK(MPI_Ibarrier(MPI_COMM_WORLD, &w[3]));
    int seen[4] = {0, 0, 0, 0};
    for (int j = 0; j < 4; j++) {
        int idx = -1;
        OK(MPI_Waitany(4, w, &idx, MPI_STATUS_IGNORE));
        CHECK(idx >= 0 && idx < 4 && !seen[idx]);
        seen[idx] = 1;
    }
    int idx = 0;
    OK(MPI_Waitany(4, w, &idx, MPI_STATUS_IGNORE));
    CHECK(idx == MPI_UNDEFINED);
    CHECK(s2 == size * (size + 1) / 2 && b2 == 77 && b1 == rank);
    if (rank == 0) printf("waitany ok\n");

    /* A blocking collective between a non-blocking one's start and its completion. */
    MPI_Request r1;
    int x = rank, y = -1, z = -1;
    OK(MPI_Iallreduce(&x, &y, 1, MPI_INT, MPI_SUM, dup, &r1));
    OK(MPI_Allreduce(&x, &z, 1, MPI_INT, MPI_MAX, dup));
    OK(MPI_Wait(&r1, MPI_STATUS_IGNORE));
    CHECK(y == size * (size - 1) / 2 && z == size - 1);
    if (rank == 0) printf("mixed with blocking ok\n");

    /* Ranks complete two collectives in opposite orders: waiting for one must advance the other
     * (MPI's progress rule), or the multi-round algorithms would wait on each other forever. */
    for (int round = 0; round < 3; round++) {
        MPI_Request a[2];
        int u = rank + round, s = -1, t = -1;
        OK(MPI_Ibarrier(MPI_COMM_WORLD, &a[0]));
        OK(MPI_Iallreduce(&u, &s, 1, MPI_INT, MPI_SUM, dup, &a[1]));
        int first = rank % 2;
        OK(MPI_Wait(&a[first], MPI_STATUS_IGNORE));
        OK(MPI_Wait(&a[1 - first], MPI_STATUS_IGNORE));
        OK(MPI_Iallreduce(&u, &t, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &a[0]));
        OK(MPI_Ibcast(&u, 1, MPI_INT, size - 1, dup, &a[1]));
        OK(MPI_Wait(&a[1 - first], MPI_STATUS_IGNORE));
        OK(MPI_Wait(&a[first], MPI_STATUS_IGNORE));
        CHECK(s == size * (size - 1) / 2 + size * round && t == size - 1 + round);
        CHECK(u == size - 1 + round);
    }
    if (rank == 0) printf("opposite completion orders ok\n");

    free(gat); free(sca); free(allg); free(a2a_s); free(a2a_r); free(rs_s);
    free(big); free(bigsum); free(counts); free(displs); free(gv);
    OK(MPI_Comm_free(&dup));
    if (rank == 0) printf("nonblocking: ok\n");
    MPI_Finalize();
    return 0;
}
