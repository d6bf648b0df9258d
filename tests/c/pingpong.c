/* A SNOO_MPI job in C: ring of ranks, ping-pong with content checks, ANY_SOURCE fan-in, and
 * error codes for bad arguments. Exits non-zero on any failure.
 * PINGPONG_LINGER_MS=n: stay n ms in the job before Finalize, so that a test sampling the process
 * from outside (what it maps, which fds it holds) cannot miss it on a slow (TCG) guest.
 * PINGPONG_SEND_DELAY_MS=n: a rank other than 0 waits n ms before its fan-in send, so that rank 0
 * sleeps on its doorbell until that send rings it, and prints when it sends (CLOCK_BOOTTIME, the
 * clock of /proc/uptime) so that a test can count the interrupts that came after. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <snoo_mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static void fill(unsigned char *b, int n, int seed) {
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(i * 31 + seed);
}

int main(void) {
    const char *name = getenv("SNOO_NAME");
    EXPECT(SNOO_MPI_Comm_rank(&(int){0}) == SNOO_MPI_ERR_NOT_INITIALIZED);
    CHECK(SNOO_MPI_Init(name ? name : "snoo"));
    EXPECT(SNOO_MPI_Init(name ? name : "snoo") == SNOO_MPI_ERR_ALREADY_INITIALIZED);
    int rank, size;
    CHECK(SNOO_MPI_Comm_rank(&rank));
    CHECK(SNOO_MPI_Comm_size(&size));

    /* Ping-pong between 0 and 1 at several sizes, both paths. */
    int sizes[] = {0, 1, 8, 100, 4096, 1 << 20};
    for (unsigned k = 0; k < sizeof sizes / sizeof *sizes && size >= 2; k++) {
        int n = sizes[k];
        unsigned char *out = malloc(n + 1), *in = malloc(n + 1);
        fill(out, n, k);
        if (rank == 0) {
            CHECK(SNOO_MPI_Send(out, n, 1, k, SNOO_MPI_BYTE, SNOO_MPI_COMM_WORLD));
            SNOO_MPI_Status st;
            CHECK(SNOO_MPI_Recv_status(in, n, 1, SNOO_MPI_BYTE, k, SNOO_MPI_COMM_WORLD, &st));
            int count;
            CHECK(SNOO_MPI_Get_count(&st, SNOO_MPI_BYTE, &count));
            EXPECT(count == n && st.SNOO_MPI_SOURCE == 1 && st.SNOO_MPI_TAG == (int)k);
            EXPECT(memcmp(in, out, n) == 0);
        } else if (rank == 1) {
            CHECK(SNOO_MPI_Recv(in, n, 0, SNOO_MPI_BYTE, k, SNOO_MPI_COMM_WORLD));
            EXPECT(memcmp(in, out, n) == 0);
            CHECK(SNOO_MPI_Send(in, n, 0, k, SNOO_MPI_BYTE, SNOO_MPI_COMM_WORLD));
        }
        free(out);
        free(in);
    }

    /* A ring of doubles with non-blocking calls. */
    double mine[4] = {rank, rank + 0.5, -rank, 1e9 + rank}, theirs[4];
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    SNOO_MPI_Request reqs[2];
    CHECK(SNOO_MPI_Irecv(theirs, 4, prev, SNOO_MPI_DOUBLE, 50, SNOO_MPI_COMM_WORLD, &reqs[0]));
    CHECK(SNOO_MPI_Isend(mine, 4, next, 50, SNOO_MPI_DOUBLE, SNOO_MPI_COMM_WORLD, &reqs[1]));
    SNOO_MPI_Status sts[2];
    CHECK(SNOO_MPI_Waitall(2, reqs, sts));
    EXPECT(theirs[0] == prev && theirs[3] == 1e9 + prev && sts[0].SNOO_MPI_SOURCE == prev);
    EXPECT(reqs[0] == SNOO_MPI_REQUEST_NULL && reqs[1] == SNOO_MPI_REQUEST_NULL);

    /* Fan-in with ANY_SOURCE and ANY_TAG. */
    if (rank == 0) {
        int seen = 0;
        for (int i = 1; i < size; i++) {
            int v;
            SNOO_MPI_Status st;
            CHECK(SNOO_MPI_Recv_status(&v, 1, SNOO_MPI_ANY_SOURCE, SNOO_MPI_INT, SNOO_MPI_ANY_TAG,
                                       SNOO_MPI_COMM_WORLD, &st));
            EXPECT(v == st.SNOO_MPI_SOURCE * 10 && st.SNOO_MPI_TAG == v);
            seen |= 1 << st.SNOO_MPI_SOURCE;
        }
        EXPECT(seen == ((1 << size) - 2));
    } else {
        int v = rank * 10;
        const char *delay = getenv("PINGPONG_SEND_DELAY_MS");
        long ms = delay ? strtol(delay, NULL, 10) : 0;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        if (ms > 0) {
            nanosleep(&ts, NULL);
            struct timespec now;
            clock_gettime(CLOCK_BOOTTIME, &now);
            printf("rank %d: fan-in send at %ld.%03ld\n", rank, (long)now.tv_sec,
                   now.tv_nsec / 1000000L);
            fflush(stdout);
        }
        CHECK(SNOO_MPI_Send(&v, 1, 0, v, SNOO_MPI_INT, SNOO_MPI_COMM_WORLD));
    }

    /* Pool memory: a send of 32 KiB or more from SNOO_MPI_Alloc_mem memory takes the single-copy
     * path. Every rank has the same heap size, so all pick the same n: 256 KiB, or what a small
     * pool (the QEMU tests') has room for. */
    int x = 0;
    {
        int n = 0;
        unsigned char *buf = NULL, *other = NULL;
        const int sizes[] = {256 << 10, 32 << 10, 4 << 10};
        for (int i = 0; i < 3 && buf == NULL; i++) {
            int rc = SNOO_MPI_Alloc_mem(sizes[i], &buf);
            EXPECT(rc == SNOO_MPI_SUCCESS || rc == SNOO_MPI_ERR_NO_MEM);
            n = sizes[i];
        }
        EXPECT(buf != NULL && buf[0] == 0 && buf[n - 1] == 0);
        if (rank == 0)
            printf("pool memory: %d bytes\n", n);
        if (rank == 0 && size > 1) {
            for (int i = 0; i < n; i++)
                buf[i] = (unsigned char)(i * 7);
            CHECK(SNOO_MPI_Send(buf, n, 1, 60, SNOO_MPI_BYTE, SNOO_MPI_COMM_WORLD));
        } else if (rank == 1) {
            unsigned char *in = malloc(n);
            EXPECT(in != NULL);
            CHECK(SNOO_MPI_Recv(in, n, 0, SNOO_MPI_BYTE, 60, SNOO_MPI_COMM_WORLD));
            for (int i = 0; i < n; i++)
                EXPECT(in[i] == (unsigned char)(i * 7));
            free(in);
        }
        EXPECT(SNOO_MPI_Alloc_mem(-1, &other) == SNOO_MPI_ERR_COUNT);
        EXPECT(SNOO_MPI_Alloc_mem(16, NULL) == SNOO_MPI_ERR_ARG);
        EXPECT(SNOO_MPI_Alloc_mem(1L << 30, &other) == SNOO_MPI_ERR_NO_MEM && other == NULL);
        EXPECT(SNOO_MPI_Free_mem(&x) == SNOO_MPI_ERR_ARG);
        EXPECT(SNOO_MPI_Free_mem(NULL) == SNOO_MPI_SUCCESS);
        CHECK(SNOO_MPI_Free_mem(buf));
        EXPECT(SNOO_MPI_Free_mem(buf) == SNOO_MPI_ERR_ARG);
    }

    /* Bad arguments give documented codes, never a crash. */
    EXPECT(SNOO_MPI_Send(NULL, 1, 0, 0, SNOO_MPI_INT, SNOO_MPI_COMM_WORLD) == SNOO_MPI_ERR_BUFFER);
    EXPECT(SNOO_MPI_Send(&x, -1, 0, 0, SNOO_MPI_INT, SNOO_MPI_COMM_WORLD) == SNOO_MPI_ERR_COUNT);
    EXPECT(SNOO_MPI_Send(&x, 1, size, 0, SNOO_MPI_INT, SNOO_MPI_COMM_WORLD) == SNOO_MPI_ERR_RANK);
    EXPECT(SNOO_MPI_Send(&x, 1, 0, -5, SNOO_MPI_INT, SNOO_MPI_COMM_WORLD) == SNOO_MPI_ERR_TAG);
    EXPECT(SNOO_MPI_Send(&x, 1, 0, 0, 999, SNOO_MPI_COMM_WORLD) == SNOO_MPI_ERR_TYPE);
    EXPECT(SNOO_MPI_Send(&x, 1, 0, 0, SNOO_MPI_INT, 42) == SNOO_MPI_ERR_COMM);
    SNOO_MPI_Request bogus = 12345;
    EXPECT(SNOO_MPI_Wait(&bogus, SNOO_MPI_STATUS_IGNORE) == SNOO_MPI_ERR_REQUEST);
    EXPECT(strcmp(SNOO_MPI_Error_string(SNOO_MPI_ERR_PEER_DEAD), "a peer rank died") == 0);

    const char *linger = getenv("PINGPONG_LINGER_MS");
    if (linger) {
        long ms = strtol(linger, NULL, 10);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        if (ms > 0)
            nanosleep(&ts, NULL);
    }
    CHECK(SNOO_MPI_Finalize());
    EXPECT(SNOO_MPI_Finalize() == SNOO_MPI_ERR_NOT_INITIALIZED);
    EXPECT(SNOO_MPI_Comm_rank(&x) == SNOO_MPI_ERR_NOT_INITIALIZED);
    printf("rank %d of %d: ok\n", rank, size);
    return 0;
}
