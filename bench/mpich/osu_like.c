/*
 * The measurements of snoo-bench (bench/src/bin/snoo-bench.rs) written against MPI, with the same
 * methods, iteration counts and OSU-format output, so the tables compare line by line.
 *
 *   mpicc -O2 -o osu_like bench/mpich/osu_like.c
 *   mpiexec -n 2 ./osu_like KIND [--json] [--min SIZE] [--max SIZE] [--total SIZE] [--max-msgs N]
 *       [--scale F]
 *
 * KIND: latency (osu_latency), bw (osu_bw), bibw (osu_bibw), seed (a total of 1 GiB moved with
 * blocking MPI_Send/MPI_Recv per buffer size, powers of 4 from 64 B). Sizes take K/M/G suffixes.
 * Keep the iteration counts in step with `iterations` in bench/src/lib.rs.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 64
#define TAG 1
#define ACK 2

enum kind { LATENCY, BW, BIBW, SEED };
static const char *names[] = {"latency", "bw", "bibw", "seed"};
static const char *titles[] = {"Latency Test", "Bandwidth Test", "Bi-Directional Bandwidth Test",
                               "Seed (1 GiB blocking) Bandwidth Test"};

static size_t parse_size(const char *s) {
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    switch (*end) {
    case 'k': case 'K': n <<= 10; break;
    case 'm': case 'M': n <<= 20; break;
    case 'g': case 'G': n <<= 30; break;
    case 0: break;
    default: fprintf(stderr, "osu_like: bad size %s\n", s); MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return (size_t)n;
}

static void iterations(enum kind k, size_t size, double scale, int *skip, int *iters) {
    int n;
    switch (k) {
    case LATENCY:
        if (size <= 8192) { *skip = 100; n = 10000; }
        else if (size <= (256 << 10)) { *skip = 10; n = 1000; }
        else { *skip = 5; n = 100; }
        break;
    case BW: case BIBW:
        if (size <= 8192) { *skip = 10; n = 100; } else { *skip = 2; n = 20; }
        break;
    default: *skip = 0; n = 1;
    }
    n = (int)(n * scale + 0.5);
    *iters = n < 1 ? 1 : n;
}

static double latency(int rank, size_t size, double scale, char *sbuf, char *rbuf) {
    int skip, iters;
    double t0 = 0;
    iterations(LATENCY, size, scale, &skip, &iters);
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < skip + iters; i++) {
        if (i == skip) t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(sbuf, (int)size, MPI_CHAR, 1, TAG, MPI_COMM_WORLD);
            MPI_Recv(rbuf, (int)size, MPI_CHAR, 1, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(rbuf, (int)size, MPI_CHAR, 0, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(sbuf, (int)size, MPI_CHAR, 0, TAG, MPI_COMM_WORLD);
        }
    }
    return (MPI_Wtime() - t0) * 1e6 / (2.0 * iters);
}

/* Receive buffers are distinct per window slot, as in snoo-bench. */
static double bandwidth(int rank, size_t size, double scale, int both, char *sbuf, char *rbufs) {
    int skip, iters, n;
    double t0 = 0;
    char ack[4] = {0};
    MPI_Request reqs[2 * WINDOW];
    MPI_Status stats[2 * WINDOW];
    int peer = 1 - rank;
    iterations(both ? BIBW : BW, size, scale, &skip, &iters);
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < skip + iters; i++) {
        if (i == skip) t0 = MPI_Wtime();
        n = 0;
        if (both || rank == 1)
            for (int j = 0; j < WINDOW; j++)
                MPI_Irecv(rbufs + j * size, (int)size, MPI_CHAR, peer, TAG, MPI_COMM_WORLD, &reqs[n++]);
        if (both || rank == 0)
            for (int j = 0; j < WINDOW; j++)
                MPI_Isend(sbuf, (int)size, MPI_CHAR, peer, TAG, MPI_COMM_WORLD, &reqs[n++]);
        MPI_Waitall(n, reqs, stats);
        if (!both) {
            if (rank == 1)
                MPI_Send(ack, 4, MPI_CHAR, 0, ACK, MPI_COMM_WORLD);
            else
                MPI_Recv(ack, 4, MPI_CHAR, 1, ACK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
    }
    double t = MPI_Wtime() - t0;
    return (double)size * WINDOW * iters * (both ? 2.0 : 1.0) / t / 1e6;
}

static double seed(int rank, size_t size, size_t total, size_t max_msgs, char *buf) {
    size_t n = total / (size ? size : 1);
    if (n > max_msgs) n = max_msgs;
    char ack[4] = {0};
    if (n == 0) n = 1;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (rank == 0) {
        for (size_t i = 0; i < n; i++) MPI_Send(buf, (int)size, MPI_CHAR, 1, TAG, MPI_COMM_WORLD);
        MPI_Recv(ack, 4, MPI_CHAR, 1, ACK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        for (size_t i = 0; i < n; i++)
            MPI_Recv(buf, (int)size, MPI_CHAR, 0, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(ack, 4, MPI_CHAR, 0, ACK, MPI_COMM_WORLD);
    }
    return (double)(n * size) / (MPI_Wtime() - t0) / 1e6;
}

int main(int argc, char **argv) {
    int rank, nranks, json = 0, k = -1;
    size_t min = 0, max = 0, total = (size_t)1 << 30, max_msgs = (size_t)-1;
    int have_min = 0, have_max = 0;
    double scale = 1.0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--min") && i + 1 < argc) { min = parse_size(argv[++i]); have_min = 1; }
        else if (!strcmp(argv[i], "--max") && i + 1 < argc) { max = parse_size(argv[++i]); have_max = 1; }
        else if (!strcmp(argv[i], "--total") && i + 1 < argc) total = parse_size(argv[++i]);
        else if (!strcmp(argv[i], "--max-msgs") && i + 1 < argc) max_msgs = parse_size(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = atof(argv[++i]);
        else {
            for (int j = 0; j < 4; j++)
                if (!strcmp(argv[i], names[j])) k = j;
            if (k < 0) {
                if (rank == 0) fprintf(stderr, "osu_like: unknown argument %s\n", argv[i]);
                MPI_Abort(MPI_COMM_WORLD, 2);
            }
        }
    }
    if (k < 0 || nranks != 2) {
        if (rank == 0)
            fprintf(stderr, "usage: mpiexec -n 2 osu_like latency|bw|bibw|seed [--json] [--min S] "
                            "[--max S] [--total S] [--max-msgs N] [--scale F]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (!have_min) min = k == SEED ? 64 : 1;
    if (!have_max) max = (size_t)4 << 20;
    size_t step = k == SEED ? 4 : 2;
    char *sbuf = malloc(max ? max : 1), *rbufs = malloc(max ? max * WINDOW : 1);
    memset(sbuf, 'a', max);
    memset(rbufs, 'b', max * WINDOW);
    if (rank == 0 && !json) {
        /* Which library ran (MPICH's, or SNOO's libmpi.so.12 under snoo-run): its first line. */
        char lib[MPI_MAX_LIBRARY_VERSION_STRING];
        int len;
        MPI_Get_library_version(lib, &len);
        lib[strcspn(lib, "\n")] = 0;
        printf("# MPI %s v1\n# library: %s\n%-10s%18s\n", titles[k], lib, "# Size",
               k == LATENCY ? "Latency (us)" : "Bandwidth (MB/s)");
    }
    if (rank == 0 && json)
        printf("{\"implementation\":\"MPI\",\"kind\":\"%s\",\"unit\":\"%s\",\"results\":[", names[k],
               k == LATENCY ? "us" : "MB/s");
    int first = 1;
    for (size_t size = min; size <= max; size = size ? size * step : 1) {
        double v = 0;
        if (rank <= 1) {
            switch (k) {
            case LATENCY: v = latency(rank, size, scale, sbuf, rbufs); break;
            case BW: v = bandwidth(rank, size, scale, 0, sbuf, rbufs); break;
            case BIBW: v = bandwidth(rank, size, scale, 1, sbuf, rbufs); break;
            default: v = seed(rank, size, total, max_msgs, rbufs); break;
            }
        }
        if (rank == 0) {
            if (json) printf("%s{\"size\":%zu,\"value\":%.4f}", first ? "" : ",", size, v);
            else printf("%-10zu%18.2f\n", size, v);
            fflush(stdout);
        }
        first = 0;
    }
    if (rank == 0 && json) printf("]}\n");
    free(sbuf);
    free(rbufs);
    MPI_Finalize();
    return 0;
}
