/* How long a job takes to start: every rank notes the time it entered main() and the time
 * MPI_Init returned (all ranks joined); rank 0 prints how long after the last rank entered main()
 * the last MPI_Init returned. Issue 20's goal: within 1 s for 64 ranks.
 * Usage: snoo-run -n 64 ./startup   (or mpiexec -n 64 ./startup) */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    double entered = now();
    MPI_Init(&argc, &argv);
    double joined = now();
    double t[2] = {entered, joined}, last[2], first[2];
    MPI_Reduce(t, last, 2, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(t, first, 2, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0)
        printf("%d ranks: processes entered main() over %.1f ms; the last MPI_Init returned %.1f ms "
               "after the last one did\n",
               size, (last[0] - first[0]) * 1e3, (last[1] - last[0]) * 1e3);
    MPI_Finalize();
    return 0;
}
