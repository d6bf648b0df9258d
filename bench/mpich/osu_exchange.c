/*
 * The exchange of snoo-bench (bench/src/bin/snoo-bench.rs) written against MPI, with the same
 * method, iteration counts and OSU-format output, so the tables compare line by line; and the
 * ping-pong with sleeping ranks of `snoo-bench latency` under more than two ranks.
 *
 *   mpicc -O2 -o osu_exchange bench/mpich/osu_exchange.c
 *   mpiexec -n N ./osu_exchange [exchange|latency] [--min SIZE] [--max SIZE] [--scale F]
 *
 * exchange (the default): per iteration every rank posts an MPI_Irecv from every other rank
 * (into a buffer per peer) and an MPI_Isend of its buffer to every other rank, then MPI_Waitall;
 * no barrier between iterations (each waits for every peer's messages of that iteration). Per
 * size: an MPI_Barrier, one checked exchange (every byte from every peer compared with what that
 * peer sent; a mismatch aborts the job with exit code 3), a barrier, `skip` warm-up and `iters`
 * timed iterations (200/2000 up to 8 KiB, 20/200 up to 64 KiB, 5/50 above, as osu_coll.c), and
 * the slowest rank's time (MPI_Reduce MAX). Aggregate MB/s = size × N × (N − 1) × iters / time /
 * 10⁶ (the bytes all ranks sent), per-rank MB/s = aggregate / N. Sizes: powers of 4 from 1 B to
 * 1 MiB (4 KiB and 1 MiB among them).
 *
 * latency: osu_latency between ranks 0 and 1 (blocking MPI_Send/MPI_Recv, one-way time = round
 * trip / 2, the counts of osu_like.c); every rank beyond 1 waits in one MPI_Recv from
 * MPI_ANY_SOURCE until rank 0 releases it after the last size. Sizes: powers of 2 from 1 B to
 * 4 MiB; the first round trip of each size is checked.
 *
 * Sizes take K/M/G suffixes. Output: "# MPI ... v1", "# library: ..." (MPI_Get_library_version's
 * first line), "# ranks: N", then the OSU table: "# Size" and "Aggregate (MB/s)" "Per-rank (MB/s)"
 * (%-10s%18s%18s, rows %-10zu%18.2f%18.2f), or "Latency (us)" (%-10s%18s).
 * Keep the iteration counts in step with `iterations` in bench/src/lib.rs.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG 1
#define SYNC 3
#define RELEASE 4

static size_t parse_size(const char *s) {
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    switch (*end) {
    case 'k': case 'K': n <<= 10; break;
    case 'm': case 'M': n <<= 20; break;
    case 'g': case 'G': n <<= 30; break;
    case 0: break;
    default: fprintf(stderr, "osu_exchange: bad size %s\n", s); MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return (size_t)n;
}

static int scaled(int n, double scale) {
    n = (int)(n * scale + 0.5);
    return n < 1 ? 1 : n;
}

/* Byte i of what rank `from` sends: differs between ranks and offsets (as snoo-bench). */
static unsigned char pattern(int from, size_t i) {
    return (unsigned char)((size_t)from * 37 + i * 13 + 1);
}

/* One exchange: receives from rank - k, sends to rank + k, k = 1 .. n - 1 (a rotation, so that
 * not every rank starts with rank 0). rbufs holds one slot of `size` bytes per k. */
static void exchange_once(int rank, int n, size_t size, const char *sbuf, char *rbufs,
                          MPI_Request *reqs, MPI_Status *stats) {
    int m = 0;
    for (int k = 1; k < n; k++)
        MPI_Irecv(rbufs + (size_t)(k - 1) * size, (int)size, MPI_CHAR, (rank + n - k) % n, TAG,
                  MPI_COMM_WORLD, &reqs[m++]);
    for (int k = 1; k < n; k++)
        MPI_Isend(sbuf, (int)size, MPI_CHAR, (rank + k) % n, TAG, MPI_COMM_WORLD, &reqs[m++]);
    MPI_Waitall(m, reqs, stats);
}

/* The slowest rank's time of the timed iterations, and the aggregate MB/s (valid on rank 0). */
static double exchange(int rank, int n, size_t size, double scale, char *sbuf, char *rbufs,
                       MPI_Request *reqs, MPI_Status *stats) {
    int skip, iters;
    if (size <= 8192) { skip = 200; iters = 2000; }
    else if (size <= (64 << 10)) { skip = 20; iters = 200; }
    else { skip = 5; iters = 50; }
    iters = scaled(iters, scale);
    for (size_t i = 0; i < size; i++) sbuf[i] = (char)pattern(rank, i);
    for (int k = 1; k < n; k++) {
        int from = (rank + n - k) % n;
        for (size_t i = 0; i < size; i++)
            rbufs[(size_t)(k - 1) * size + i] = (char)~pattern(from, i);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    exchange_once(rank, n, size, sbuf, rbufs, reqs, stats);
    for (int k = 1; k < n; k++) {
        int from = (rank + n - k) % n;
        const unsigned char *r = (const unsigned char *)rbufs + (size_t)(k - 1) * size;
        for (size_t i = 0; i < size; i++)
            if (r[i] != pattern(from, i)) {
                fprintf(stderr,
                        "osu_exchange: check failed at %zu B: rank %d got byte %zu from rank %d "
                        "as 0x%02x, expected 0x%02x\n",
                        size, rank, i, from, r[i], pattern(from, i));
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = 0;
    for (int i = 0; i < skip + iters; i++) {
        if (i == skip) t0 = MPI_Wtime();
        exchange_once(rank, n, size, sbuf, rbufs, reqs, stats);
    }
    double t = MPI_Wtime() - t0, tmax = 0;
    MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    return (double)size * n * (n - 1) * iters / tmax / 1e6;
}

/* osu_latency between ranks 0 and 1; the first round trip is checked. */
static double latency(int rank, size_t size, double scale, char *sbuf, char *rbuf) {
    int skip, iters;
    if (size <= 8192) { skip = 100; iters = 10000; }
    else if (size <= (256 << 10)) { skip = 10; iters = 1000; }
    else { skip = 5; iters = 100; }
    iters = scaled(iters, scale);
    int peer = 1 - rank;
    for (size_t i = 0; i < size; i++) {
        sbuf[i] = (char)pattern(rank, i);
        rbuf[i] = (char)~pattern(peer, i);
    }
    /* A barrier of ranks 0 and 1 (the others are in their receive), as snoo-bench's. */
    char z = 0;
    if (rank == 0) {
        MPI_Send(&z, 0, MPI_CHAR, 1, SYNC, MPI_COMM_WORLD);
        MPI_Recv(&z, 0, MPI_CHAR, 1, SYNC, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        MPI_Recv(&z, 0, MPI_CHAR, 0, SYNC, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(&z, 0, MPI_CHAR, 0, SYNC, MPI_COMM_WORLD);
    }
    double t0 = 0;
    for (int i = 0; i < skip + iters; i++) {
        if (i == skip) t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(sbuf, (int)size, MPI_CHAR, 1, TAG, MPI_COMM_WORLD);
            MPI_Recv(rbuf, (int)size, MPI_CHAR, 1, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(rbuf, (int)size, MPI_CHAR, 0, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(sbuf, (int)size, MPI_CHAR, 0, TAG, MPI_COMM_WORLD);
        }
        if (i == 0)
            for (size_t j = 0; j < size; j++)
                if ((unsigned char)rbuf[j] != pattern(peer, j)) {
                    fprintf(stderr, "osu_exchange: latency check failed at %zu B, byte %zu\n",
                            size, j);
                    MPI_Abort(MPI_COMM_WORLD, 3);
                }
    }
    return (MPI_Wtime() - t0) * 1e6 / (2.0 * iters);
}

int main(int argc, char **argv) {
    int rank, n, lat = 0, have_min = 0, have_max = 0;
    size_t min = 0, max = 0;
    double scale = 1.0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "exchange")) lat = 0;
        else if (!strcmp(argv[i], "latency")) lat = 1;
        else if (!strcmp(argv[i], "--min") && i + 1 < argc) { min = parse_size(argv[++i]); have_min = 1; }
        else if (!strcmp(argv[i], "--max") && i + 1 < argc) { max = parse_size(argv[++i]); have_max = 1; }
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = atof(argv[++i]);
        else {
            if (rank == 0)
                fprintf(stderr, "usage: mpiexec -n N osu_exchange [exchange|latency] [--min S] "
                                "[--max S] [--scale F]\n");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    if (n < 2) {
        if (rank == 0) fprintf(stderr, "osu_exchange: needs at least 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (!have_min) min = 1;
    if (!have_max) max = lat ? (size_t)4 << 20 : (size_t)1 << 20;
    if (max > (size_t)1 << 30) {
        if (rank == 0) fprintf(stderr, "osu_exchange: --max above 1G\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    size_t step = lat ? 2 : 4, slots = lat ? 1 : (size_t)(n - 1);
    char *sbuf = malloc(max ? max : 1), *rbufs = malloc(max ? max * slots : 1);
    MPI_Request *reqs = malloc(sizeof(MPI_Request) * 2 * (size_t)n);
    MPI_Status *stats = malloc(sizeof(MPI_Status) * 2 * (size_t)n);
    if (!sbuf || !rbufs || !reqs || !stats) {
        fprintf(stderr, "osu_exchange: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (rank == 0) {
        /* Which library ran (MPICH's, or SNOO's libmpi.so.12 under snoo-run): its first line. */
        char lib[MPI_MAX_LIBRARY_VERSION_STRING];
        int len;
        MPI_Get_library_version(lib, &len);
        lib[strcspn(lib, "\n")] = 0;
        printf("# MPI %s v1\n# library: %s\n# ranks: %d\n",
               lat ? "Latency Test" : "Exchange Bandwidth Test", lib, n);
        if (lat) printf("%-10s%18s\n", "# Size", "Latency (us)");
        else printf("%-10s%18s%18s\n", "# Size", "Aggregate (MB/s)", "Per-rank (MB/s)");
        fflush(stdout);
    }
    if (lat && rank > 1) {
        /* Asleep (or, for MPICH, spinning) in a receive from any source until rank 0 is done. */
        char b;
        MPI_Recv(&b, 1, MPI_CHAR, MPI_ANY_SOURCE, RELEASE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        for (size_t size = min; size <= max; size = size ? size * step : 1) {
            if (lat) {
                double us = latency(rank, size, scale, sbuf, rbufs);
                if (rank == 0) printf("%-10zu%18.2f\n", size, us);
            } else {
                double agg = exchange(rank, n, size, scale, sbuf, rbufs, reqs, stats);
                if (rank == 0) printf("%-10zu%18.2f%18.2f\n", size, agg, agg / n);
            }
            if (rank == 0) fflush(stdout);
        }
        if (lat && rank == 0) {
            char b = 1;
            for (int r = 2; r < n; r++) MPI_Send(&b, 1, MPI_CHAR, r, RELEASE, MPI_COMM_WORLD);
        }
    }
    free(sbuf);
    free(rbufs);
    free(reqs);
    free(stats);
    MPI_Finalize();
    return 0;
}
