/* A 2-rank stream that only ends when a rank dies: rank 0 sends messages of SNOO_STREAM_BYTES
 * (default 16 MiB) to rank 1 without end, rank 1 receives them, checks the first and last byte
 * and prints "received K" after each. For tests that kill one rank (or its VM) mid-transfer.
 *
 * Whichever call fails, the rank prints "rank R: error CODE (STRING) after K messages" and exits
 * with status 3 if CODE is SNOO_MPI_ERR_PEER_DEAD, 1 otherwise. */
#include <snoo_mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(int rank, int rc, long k) {
    printf("rank %d: error %d (%s) after %ld messages\n", rank, rc, SNOO_MPI_Error_string(rc), k);
    fflush(stdout);
    return rc == SNOO_MPI_ERR_PEER_DEAD ? 3 : 1;
}

int main(void) {
    const char *name = getenv("SNOO_NAME");
    const char *bytes_env = getenv("SNOO_STREAM_BYTES");
    int n = bytes_env ? atoi(bytes_env) : 16 << 20;
    if (n < 2) n = 2;
    int rc = SNOO_MPI_Init(name ? name : "snoo");
    if (rc != SNOO_MPI_SUCCESS) return fail(-1, rc, 0);
    int rank;
    SNOO_MPI_Comm_rank(&rank);
    unsigned char *buf = malloc(n);
    if (!buf) return 1;
    for (long k = 0;; k++) {
        if (rank == 0) {
            memset(buf, (int)(k & 0xff), n);
            rc = SNOO_MPI_Send(buf, n, 1, 7, SNOO_MPI_BYTE, SNOO_MPI_COMM_WORLD);
            if (rc != SNOO_MPI_SUCCESS) return fail(rank, rc, k);
        } else {
            rc = SNOO_MPI_Recv(buf, n, 0, SNOO_MPI_BYTE, 7, SNOO_MPI_COMM_WORLD);
            if (rc != SNOO_MPI_SUCCESS) return fail(rank, rc, k);
            if (buf[0] != (unsigned char)k || buf[n - 1] != (unsigned char)k) {
                printf("rank 1: message %ld has wrong content\n", k);
                return 1;
            }
            printf("received %ld\n", k + 1);
            fflush(stdout);
        }
    }
}
