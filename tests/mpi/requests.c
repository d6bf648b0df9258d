/* Requests: truncation (MPI_ERR_TRUNCATE, and the next message intact), cancelling a receive,
 * persistent requests restarted, the order Waitany/Waitsome/Testany report in, and MPI_UNDEFINED
 * once every request is inactive. */
#include "mpitest.h"

static void truncation(int rank, int size) {
    int last = size - 1;
    OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int big[8] = {1, 2, 3, 4, 5, 6, 7, 8}, small[4] = {0}, next[8] = {0};
    /* Non-blocking sends: in a job of one, rank 0 sends to itself. */
    MPI_Request s[3];
    if (rank == 0)
        for (int t = 0; t < 3; t++) OK(MPI_Isend(big, 8, MPI_INT, last, 1 + t, MPI_COMM_WORLD, &s[t]));
    if (rank == last) {
        MPI_Status st;
        int rc = MPI_Recv(small, 4, MPI_INT, 0, 1, MPI_COMM_WORLD, &st);
        CHECK(mt_class(rc) == MPI_ERR_TRUNCATE);
        CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 1);
        /* The message that follows is whole. */
        OK(MPI_Recv(next, 8, MPI_INT, 0, 2, MPI_COMM_WORLD, &st));
        CHECK(next[7] == 8);
        /* Non-blocking: the error is in the status's MPI_ERROR through Waitall. */
        MPI_Request r;
        MPI_Status sts[1];
        OK(MPI_Irecv(small, 4, MPI_INT, 0, 3, MPI_COMM_WORLD, &r));
        rc = MPI_Waitall(1, &r, sts);
        CHECK(mt_class(rc) == MPI_ERR_IN_STATUS && mt_class(sts[0].MPI_ERROR) == MPI_ERR_TRUNCATE);
    }
    if (rank == 0) OK(MPI_Waitall(3, s, MPI_STATUSES_IGNORE));
    OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL));
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("truncation: ok\n");
}

static void cancel(int rank, int size) {
    int x = -1;
    MPI_Request r;
    MPI_Status st;
    OK(MPI_Irecv(&x, 1, MPI_INT, MPI_ANY_SOURCE, 999, MPI_COMM_WORLD, &r));
    OK(MPI_Cancel(&r));
    OK(MPI_Wait(&r, &st));
    int flag;
    OK(MPI_Test_cancelled(&st, &flag));
    CHECK(flag && r == MPI_REQUEST_NULL && x == -1);
    /* A message sent afterwards on that tag is not lost to the cancelled receive (sent only once
     * every rank's receive is cancelled: a receive that matched first could not be). */
    OK(MPI_Barrier(MPI_COMM_WORLD));
    int next = (rank + 1) % size, prev = (rank + size - 1) % size, v = rank;
    OK(MPI_Sendrecv(&v, 1, MPI_INT, next, 999, &x, 1, MPI_INT, prev, 999, MPI_COMM_WORLD, &st));
    CHECK(x == prev);
    OK(MPI_Test_cancelled(&st, &flag));
    CHECK(!flag);
    say("cancel: ok\n");
}

static void persistent(int rank, int size) {
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    int out, in;
    MPI_Request r[2];
    OK(MPI_Recv_init(&in, 1, MPI_INT, prev, 4, MPI_COMM_WORLD, &r[0]));
    OK(MPI_Send_init(&out, 1, MPI_INT, next, 4, MPI_COMM_WORLD, &r[1]));
    long sum = 0;
    for (int i = 0; i < 5; i++) {
        out = rank * 100 + i;
        OK(MPI_Startall(2, r));
        OK(MPI_Waitall(2, r, MPI_STATUSES_IGNORE));
        CHECK(r[0] != MPI_REQUEST_NULL && in == prev * 100 + i);
        sum += in;
    }
    /* One at a time with Start, and a synchronous-mode template. */
    MPI_Request s;
    OK(MPI_Ssend_init(&out, 1, MPI_INT, next, 4, MPI_COMM_WORLD, &s));
    out = -rank;
    OK(MPI_Start(&r[0]));
    OK(MPI_Start(&s));
    OK(MPI_Wait(&s, MPI_STATUS_IGNORE));
    OK(MPI_Wait(&r[0], MPI_STATUS_IGNORE));
    CHECK(in == -prev);
    /* An inactive persistent request completes at once with an empty status. */
    MPI_Status st;
    int flag = 0;
    OK(MPI_Test(&r[0], &flag, &st));
    CHECK(flag);
    for (int i = 0; i < 2; i++) OK(MPI_Request_free(&r[i]));
    OK(MPI_Request_free(&s));
    CHECK(r[0] == MPI_REQUEST_NULL && s == MPI_REQUEST_NULL);
    say("persistent: 5 rounds ok\n");
    (void)sum;
}

static void any_and_some(int rank, int size) {
    /* Rank 0 posts 3 receives; the others (or rank 0 itself) send tags 2, 0, 1 in that order,
     * one at a time after a go-ahead, so that completion order is fixed. */
    int peer = size > 1 ? 1 : 0;
    if (rank == 0) {
        int buf[3] = {-1, -1, -1}, idx, order[3];
        MPI_Request r[3];
        MPI_Status st;
        for (int t = 0; t < 3; t++) OK(MPI_Irecv(&buf[t], 1, MPI_INT, peer, t, MPI_COMM_WORLD, &r[t]));
        int tags[3] = {2, 0, 1};
        for (int k = 0; k < 3; k++) {
            if (peer == 0) {
                OK(MPI_Send(&tags[k], 1, MPI_INT, 0, tags[k], MPI_COMM_WORLD));
            } else {
                OK(MPI_Send(&k, 1, MPI_INT, peer, 50, MPI_COMM_WORLD));
            }
            OK(MPI_Waitany(3, r, &idx, &st));
            order[k] = idx;
            CHECK(st.MPI_TAG == idx && buf[idx] == idx && r[idx] == MPI_REQUEST_NULL);
        }
        OK(MPI_Waitany(3, r, &idx, &st));
        CHECK(idx == MPI_UNDEFINED);
        int flag;
        OK(MPI_Testany(3, r, &idx, &flag, &st));
        CHECK(flag && idx == MPI_UNDEFINED);
        say("waitany order: %d %d %d\n", order[0], order[1], order[2]);
        /* Waitsome over two receives whose messages both arrived. */
        int a = -1, b = -1, outc, idxs[2];
        OK(MPI_Irecv(&a, 1, MPI_INT, peer, 10, MPI_COMM_WORLD, &r[0]));
        OK(MPI_Irecv(&b, 1, MPI_INT, peer, 11, MPI_COMM_WORLD, &r[1]));
        int go = 3;
        if (peer == 0) {
            int ten = 10, eleven = 11;
            OK(MPI_Send(&eleven, 1, MPI_INT, 0, 11, MPI_COMM_WORLD));
            OK(MPI_Send(&ten, 1, MPI_INT, 0, 10, MPI_COMM_WORLD));
        } else {
            OK(MPI_Send(&go, 1, MPI_INT, peer, 50, MPI_COMM_WORLD));
        }
        int got = 0;
        MPI_Status sts[2];
        while (got < 2) {
            OK(MPI_Waitsome(2, r, &outc, idxs, sts));
            CHECK(outc >= 1);
            for (int i = 0; i < outc; i++) CHECK(sts[i].MPI_TAG == 10 + idxs[i]);
            got += outc;
        }
        CHECK(a == 10 && b == 11);
        OK(MPI_Waitsome(2, r, &outc, idxs, sts));
        CHECK(outc == MPI_UNDEFINED);
        /* Testall is false until every request is done. */
        OK(MPI_Irecv(&a, 1, MPI_INT, peer, 12, MPI_COMM_WORLD, &r[0]));
        OK(MPI_Testall(1, r, &flag, MPI_STATUSES_IGNORE));
        CHECK(!flag);
        if (peer == 0) {
            int tw = 12;
            OK(MPI_Send(&tw, 1, MPI_INT, 0, 12, MPI_COMM_WORLD));
        } else {
            go = 4;
            OK(MPI_Send(&go, 1, MPI_INT, peer, 50, MPI_COMM_WORLD));
        }
        while (!flag) OK(MPI_Testall(1, r, &flag, MPI_STATUSES_IGNORE));
        CHECK(a == 12);
        say("waitsome, testall: ok\n");
    } else if (rank == 1) {
        int tags[3] = {2, 0, 1}, k;
        for (int i = 0; i < 3; i++) {
            OK(MPI_Recv(&k, 1, MPI_INT, 0, 50, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            OK(MPI_Send(&tags[k], 1, MPI_INT, 0, tags[k], MPI_COMM_WORLD));
        }
        OK(MPI_Recv(&k, 1, MPI_INT, 0, 50, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        int ten = 10, eleven = 11;
        OK(MPI_Send(&eleven, 1, MPI_INT, 0, 11, MPI_COMM_WORLD));
        OK(MPI_Send(&ten, 1, MPI_INT, 0, 10, MPI_COMM_WORLD));
        OK(MPI_Recv(&k, 1, MPI_INT, 0, 50, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        int tw = 12;
        OK(MPI_Send(&tw, 1, MPI_INT, 0, 12, MPI_COMM_WORLD));
    }
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    say("requests on %d ranks\n", size);
    truncation(rank, size);
    cancel(rank, size);
    persistent(rank, size);
    any_and_some(rank, size);
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("requests: ok\n");
    OK(MPI_Finalize());
    return 0;
}
