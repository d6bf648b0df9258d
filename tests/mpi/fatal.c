/* MPI_ERRORS_ARE_FATAL, the default: the last rank sends to a rank that does not exist, which
 * must end the whole job (every rank, a non-zero exit status) without anyone hanging, even ranks
 * blocked in a receive that will never be matched. The harness checks the exit status and, under
 * SNOO, that the message names the function and the rank. */
#include "mpitest.h"

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    say("fatal on %d ranks\n", size);
    OK(MPI_Barrier(MPI_COMM_WORLD));
    int x = 0;
    if (rank == size - 1) {
        MPI_Send(&x, 1, MPI_INT, size + 7, 0, MPI_COMM_WORLD);
        printf("rank %d: still running after a fatal error\n", rank);
        return 0;
    }
    /* Blocked for good: only the end of the job gets these ranks out. */
    MPI_Recv(&x, 1, MPI_INT, size - 1, 12345, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    printf("rank %d: received a message nobody sent\n", rank);
    return 0;
}
