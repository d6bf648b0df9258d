/* Synchronous sends: MPI_Issend stays incomplete until its receiver has started a matching
 * receive, whatever the size, even when the receiver reads other messages from the same sender
 * first; then it completes. The same for a message taken by a matched probe, for MPI_Ssend and
 * for a restarted MPI_Ssend_init. Pairs of ranks (0,1), (2,3); an odd last rank sends to itself. */
#include "mpitest.h"

/* Rank `me` sends to `peer`, which signals "go" on tag 99 only after checking the send is not
 * complete; the sender tests its request while waiting for the go. */
static void one_size(int peer, size_t n, int sender, int use_mprobe) {
    unsigned char *buf = malloc(n + 1);
    if (sender) {
        fill(buf, n, (int)n);
        MPI_Request r;
        OK(MPI_Issend(buf, (int)n, MPI_BYTE, peer, 5, MPI_COMM_WORLD, &r));
        /* The receiver cannot have posted its receive before our "ready" arrives. */
        int flag = 0, ready = 1;
        OK(MPI_Test(&r, &flag, MPI_STATUS_IGNORE));
        CHECK(!flag);
        OK(MPI_Send(&ready, 1, MPI_INT, peer, 98, MPI_COMM_WORLD));
        int go;
        MPI_Request g;
        OK(MPI_Irecv(&go, 1, MPI_INT, peer, 99, MPI_COMM_WORLD, &g));
        /* The receiver sends "go" before it receives: the send may complete only once "go" is
         * here (tested in that order, since one test may bring both). */
        int gone = 0;
        while (!gone) {
            if (!flag) OK(MPI_Test(&r, &flag, MPI_STATUS_IGNORE));
            OK(MPI_Test(&g, &gone, MPI_STATUS_IGNORE));
            CHECK(!flag || gone);
        }
        OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    } else {
        int ready;
        /* A receive from the same sender on another tag: reads past the synchronous message. */
        OK(MPI_Recv(&ready, 1, MPI_INT, peer, 98, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        int go = 1;
        OK(MPI_Send(&go, 1, MPI_INT, peer, 99, MPI_COMM_WORLD));
        MPI_Status st;
        if (use_mprobe) {
            MPI_Message m;
            OK(MPI_Mprobe(MPI_ANY_SOURCE, 5, MPI_COMM_WORLD, &m, &st));
            OK(MPI_Mrecv(buf, (int)n, MPI_BYTE, &m, &st));
        } else {
            OK(MPI_Recv(buf, (int)n, MPI_BYTE, MPI_ANY_SOURCE, 5, MPI_COMM_WORLD, &st));
        }
        int count;
        OK(MPI_Get_count(&st, MPI_BYTE, &count));
        CHECK(count == (int)n && st.MPI_SOURCE == peer && same(buf, n, (int)n));
    }
    free(buf);
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    say("ssend on %d ranks\n", size);
    int paired = rank < size - size % 2;
    if (paired) {
        int peer = rank ^ 1;
        size_t sizes[] = {0, 8, 1000, 100000, 1 << 20};
        for (int k = 0; k < 5; k++) {
            one_size(peer, sizes[k], rank % 2 == 0, k == 2);
            one_size(peer, sizes[k], rank % 2 == 1, k == 3);
        }
        /* Blocking MPI_Ssend against a posted receive, and a restarted MPI_Ssend_init. */
        int v = rank, w = -1;
        MPI_Request r, s;
        OK(MPI_Irecv(&w, 1, MPI_INT, peer, 7, MPI_COMM_WORLD, &r));
        OK(MPI_Ssend(&v, 1, MPI_INT, peer, 7, MPI_COMM_WORLD));
        OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        CHECK(w == peer);
        OK(MPI_Ssend_init(&v, 1, MPI_INT, peer, 8, MPI_COMM_WORLD, &s));
        for (int i = 0; i < 3; i++) {
            v = rank * 10 + i;
            OK(MPI_Irecv(&w, 1, MPI_INT, peer, 8, MPI_COMM_WORLD, &r));
            OK(MPI_Start(&s));
            OK(MPI_Wait(&s, MPI_STATUS_IGNORE));
            OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
            CHECK(w == peer * 10 + i);
        }
        OK(MPI_Request_free(&s));
    } else {
        /* To itself: the receive posted after the send lets it complete. */
        int v = 5, w = 0, flag;
        MPI_Request r;
        OK(MPI_Issend(&v, 1, MPI_INT, rank, 3, MPI_COMM_WORLD, &r));
        OK(MPI_Test(&r, &flag, MPI_STATUS_IGNORE));
        CHECK(!flag);
        OK(MPI_Recv(&w, 1, MPI_INT, rank, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        CHECK(w == 5);
    }
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("synchronous sends: wait for their receive\n");
    say("ssend: ok\n");
    OK(MPI_Finalize());
    return 0;
}
