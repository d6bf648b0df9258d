/* MPI_Waitany and MPI_Waitsome on receives whose messages come a second late: the right
 * requests complete with the right data, in order of arrival. With MT_MAX_CPU_MS set (the SNOO
 * run of tests/tests/mpi_programs.rs), rank 0 must also have used at most that much CPU while it
 * waited: SNOO sleeps on the doorbell there. MPICH polls, so its run does not set it. */
#include "mpitest.h"
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    if (size >= 2 && rank == 0) {
        int x = 0, y = 0;
        MPI_Request q[2];
        OK(MPI_Irecv(&x, 1, MPI_INT, 1, 0, MPI_COMM_WORLD, &q[0]));
        OK(MPI_Irecv(&y, 1, MPI_INT, 1, 1, MPI_COMM_WORLD, &q[1]));
        OK(MPI_Barrier(MPI_COMM_WORLD));
        clock_t cpu = clock();
        int i = -1, out = -1, idx[2] = {-1, -1};
        OK(MPI_Waitany(2, q, &i, MPI_STATUS_IGNORE));
        CHECK(i == 1 && y == 11 && q[1] == MPI_REQUEST_NULL);
        OK(MPI_Waitsome(2, q, &out, idx, MPI_STATUSES_IGNORE));
        CHECK(out == 1 && idx[0] == 0 && x == 10 && q[0] == MPI_REQUEST_NULL);
        double ms = (double)(clock() - cpu) * 1000.0 / CLOCKS_PER_SEC;
        const char *max = getenv("MT_MAX_CPU_MS");
        if (max && ms > atof(max)) {
            fprintf(stderr, "rank 0 used %.0f ms of CPU waiting (at most %s)\n", ms, max);
            CHECK(ms <= atof(max));
        }
    } else if (rank == 1) {
        OK(MPI_Barrier(MPI_COMM_WORLD));
        int a = 11, b = 10;
        sleep(1);
        OK(MPI_Send(&a, 1, MPI_INT, 0, 1, MPI_COMM_WORLD));
        sleep(1);
        OK(MPI_Send(&b, 1, MPI_INT, 0, 0, MPI_COMM_WORLD));
    } else {
        OK(MPI_Barrier(MPI_COMM_WORLD));
    }
    say("idle_wait on %d ranks\n", size);
    say("idle_wait: ok\n");
    OK(MPI_Finalize());
    return 0;
}
