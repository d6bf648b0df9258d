/*
 * The OSU collective latency methods (osu_barrier, osu_bcast, osu_reduce, osu_allreduce,
 * osu_allgather, osu_alltoall, osu_reduce_scatter) in one MPI program: for each size, `skip`
 * untimed then `iters` timed calls back to back, the average time per call on each rank, then
 * the average over ranks (what OSU prints as "Avg Latency(us)"). A barrier separates sizes.
 * Sizes are bytes per rank (per pair for alltoall, each rank's block for reduce_scatter, which
 * calls MPI_Reduce_scatter_block), MPI_CHAR for data movement and MPI_INT with MPI_SUM for
 * reductions.
 *
 *   mpicc -O2 -o osu_coll bench/mpich/osu_coll.c
 *   mpiexec -n 4 ./osu_coll KIND [--min SIZE] [--max SIZE]
 *
 * KIND: barrier, bcast, reduce, allreduce, allgather, alltoall, reduce_scatter. Output: the OSU
 * table format, "# Size  Avg Latency(us)", preceded by "# library: ..."
 * (MPI_Get_library_version's first line).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kinds[] = {"barrier",   "bcast",    "reduce",        "allreduce",
                              "allgather", "alltoall", "reduce_scatter"};
#define KINDS ((int)(sizeof kinds / sizeof kinds[0]))

static void iterations(size_t size, int *skip, int *iters) {
    if (size <= 8192) { *skip = 200; *iters = 2000; }
    else if (size <= (64 << 10)) { *skip = 20; *iters = 200; }
    else { *skip = 5; *iters = 50; }
}

static void once(int k, size_t size, char *s, char *r, int n) {
    int ints = (int)(size / sizeof(int));
    switch (k) {
    case 0: MPI_Barrier(MPI_COMM_WORLD); break;
    case 1: MPI_Bcast(s, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD); break;
    case 2: MPI_Reduce(s, r, ints, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD); break;
    case 3: MPI_Allreduce(s, r, ints, MPI_INT, MPI_SUM, MPI_COMM_WORLD); break;
    case 4: MPI_Allgather(s, (int)size, MPI_CHAR, r, (int)size, MPI_CHAR, MPI_COMM_WORLD); break;
    case 5: MPI_Alltoall(s, (int)size, MPI_CHAR, r, (int)size, MPI_CHAR, MPI_COMM_WORLD); break;
    case 6: MPI_Reduce_scatter_block(s, r, ints, MPI_INT, MPI_SUM, MPI_COMM_WORLD); break;
    }
    (void)n;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: osu_coll KIND [--min SIZE] [--max SIZE]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int k = -1;
    for (int i = 0; i < KINDS; i++)
        if (!strcmp(argv[1], kinds[i])) k = i;
    if (k < 0) {
        if (rank == 0) fprintf(stderr, "osu_coll: unknown kind %s\n", argv[1]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    size_t lo = 4, hi = 1 << 20;
    for (int i = 2; i + 1 < argc; i += 2) {
        char *end;
        size_t v = strtoull(argv[i + 1], &end, 10);
        /* Plain bytes only: "1M" once parsed as 1 and overran the buffers sized by --max. */
        if (*end || end == argv[i + 1]) {
            if (rank == 0) fprintf(stderr, "osu_coll: %s %s: a size in bytes, without suffix\n", argv[i], argv[i + 1]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        if (!strcmp(argv[i], "--min")) lo = v;
        else if (!strcmp(argv[i], "--max")) hi = v;
    }
    if (lo > hi) {
        if (rank == 0) fprintf(stderr, "osu_coll: --min %zu is above --max %zu\n", lo, hi);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (k == 0) lo = hi = 0;
    size_t per = (k >= 4) ? (size_t)n : 1;
    char *s = malloc(hi * per + 1), *r = malloc(hi * per + 1);
    memset(s, 1, hi * per + 1);
    memset(r, 0, hi * per + 1);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len;
    MPI_Get_library_version(lib, &len);
    char *nl = strchr(lib, '\n');
    if (nl) *nl = 0;
    if (rank == 0) {
        printf("# library: %s\n# OSU MPI %s Latency Test (%d ranks)\n", lib, kinds[k], n);
        printf("%-10s%18s\n", "# Size", "Avg Latency(us)");
    }
    for (size_t size = lo;; size = size ? size * 2 : 4) {
        int skip, iters;
        iterations(size, &skip, &iters);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = 0;
        for (int i = 0; i < skip + iters; i++) {
            if (i == skip) t0 = MPI_Wtime();
            once(k, size, s, r, n);
        }
        double us = (MPI_Wtime() - t0) * 1e6 / iters, avg = 0;
        MPI_Reduce(&us, &avg, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank == 0) printf("%-10zu%18.2f\n", size, avg / n);
        if (size >= hi) break;
    }
    free(s);
    free(r);
    MPI_Finalize();
    return 0;
}
