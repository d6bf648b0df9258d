/* Bandwidth sweep of a 2-rank SNOO_MPI job with a content check of every byte at every size:
 * 0, 1, every power of two up to 16 MiB, and odd sizes around the path and ring boundaries.
 *
 * Rank 0 sends a message of n bytes, rank 1 echoes it back; each repetition uses a different
 * pattern, and both ranks compare every byte they receive with the pattern. Rank 0 prints
 *   sweep: <bytes> B x<reps>: <MB/s> MB/s
 * per size, where MB/s = 2 * bytes * reps / (time of the reps round trips), 1 MB = 1e6 bytes.
 * The numbers are informational (nothing asserts on them); the check time of rank 1 falls inside
 * rank 0's round trip, rank 0's own check does not. Exits non-zero on any failure.
 * SNOO_SWEEP_MAX (bytes) caps the largest size. */
#define _POSIX_C_SOURCE 199309L
#include <snoo_mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

/* Byte i of the pattern for (size index k, repetition r): not periodic at any power of two, so a
 * chunk delivered at the wrong offset of the ring or the buffer shows. */
static unsigned char pat(size_t i, int k, int r) {
    uint32_t x = (uint32_t)i * 2654435761u + (uint32_t)k * 40503u + (uint32_t)r * 977u;
    return (unsigned char)((x >> 13) ^ (x >> 24) ^ (i / 65521));
}

static void fill(unsigned char *b, size_t n, int k, int r) {
    for (size_t i = 0; i < n; i++) b[i] = pat(i, k, r);
}

/* Index of the first wrong byte, or n. */
static size_t verify(const unsigned char *b, size_t n, int k, int r) {
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(i, k, r)) return i;
    return n;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int main(void) {
    const char *name = getenv("SNOO_NAME");
    const char *max_env = getenv("SNOO_SWEEP_MAX");
    size_t max = max_env ? strtoull(max_env, NULL, 0) : (size_t)16 << 20;
    CHECK(SNOO_MPI_Init(name ? name : "snoo"));
    int rank, size;
    CHECK(SNOO_MPI_Comm_rank(&rank));
    CHECK(SNOO_MPI_Comm_size(&size));
    if (size != 2) {
        fprintf(stderr, "sweep needs exactly 2 ranks, not %d\n", size);
        return 1;
    }

    /* 0, 1, powers of two, and odd sizes: around the 112-byte register path limit, around 4 KiB
     * pages and the 64 KiB test ring, a prime near 1 MiB, and 16 MiB minus one. */
    size_t sizes[64];
    int count = 0;
    sizes[count++] = 0;
    for (size_t n = 1; n <= ((size_t)16 << 20); n <<= 1) sizes[count++] = n;
    size_t odd[] = {3, 7, 111, 113, 1000, 4097, 65535, 65537, 1000003, ((size_t)16 << 20) - 1};
    for (unsigned i = 0; i < sizeof odd / sizeof *odd; i++) sizes[count++] = odd[i];
    qsort(sizes, count, sizeof *sizes, cmp_size);

    unsigned char *out = malloc(max + 1), *in = malloc(max + 1);
    if (!out || !in) {
        fprintf(stderr, "out of memory for %zu bytes\n", max);
        return 1;
    }
    int sizes_done = 0;
    for (int k = 0; k < count; k++) {
        size_t n = sizes[k];
        if (n > max) continue;
        int reps = n <= 4096 ? 20 : n <= (1 << 16) ? 8 : n <= (1 << 20) ? 3 : 1;
        double busy = 0;
        for (int r = 0; r < reps; r++) {
            if (rank == 0) {
                fill(out, n, k, r);
                memset(in, 0xA5, n);
                double t0 = now();
                CHECK(SNOO_MPI_Send(out, (int)n, 1, k, SNOO_MPI_BYTE, SNOO_MPI_COMM_WORLD));
                SNOO_MPI_Status st;
                CHECK(SNOO_MPI_Recv_status(in, (int)n, 1, SNOO_MPI_BYTE, k, SNOO_MPI_COMM_WORLD,
                                           &st));
                busy += now() - t0;
                int got;
                CHECK(SNOO_MPI_Get_count(&st, SNOO_MPI_BYTE, &got));
                size_t bad = verify(in, n, k, r);
                if ((size_t)got != n || bad != n) {
                    fprintf(stderr, "rank 0: size %zu rep %d: got %d bytes, first bad byte %zu\n",
                            n, r, got, bad);
                    return 1;
                }
            } else {
                memset(in, 0x5A, n);
                CHECK(SNOO_MPI_Recv(in, (int)n, 0, SNOO_MPI_BYTE, k, SNOO_MPI_COMM_WORLD));
                size_t bad = verify(in, n, k, r);
                if (bad != n) {
                    fprintf(stderr, "rank 1: size %zu rep %d: first bad byte %zu of %zu\n", n, r,
                            bad, n);
                    return 1;
                }
                CHECK(SNOO_MPI_Send(in, (int)n, 0, k, SNOO_MPI_BYTE, SNOO_MPI_COMM_WORLD));
            }
        }
        if (rank == 0)
            printf("sweep: %zu B x%d: %.2f MB/s\n", n, reps,
                   busy > 0 ? 2.0 * n * reps / busy / 1e6 : 0.0);
        fflush(stdout);
        sizes_done++;
    }
    free(out);
    free(in);
    CHECK(SNOO_MPI_Finalize());
    printf("rank %d of %d: sweep ok (%d sizes)\n", rank, size, sizes_done);
    return 0;
}
