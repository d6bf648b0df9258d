/* Point-to-point: blocking and non-blocking sends and receives at sizes from 0 B to 1 MiB around a
 * ring, the send modes, wildcards and statuses, probes (plain and matched), MPI_PROC_NULL, the
 * non-overtaking rule, Sendrecv(_replace) and Get_count/Get_elements. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "mpitest.h"

#include <time.h>

static void ring_sizes(int rank, int size) {
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    size_t sizes[] = {0, 1, 8, 100, 4096, 65536, 1 << 20};
    unsigned long sum = 0;
    for (int k = 0; k < (int)(sizeof sizes / sizeof *sizes); k++) {
        size_t n = sizes[k];
        unsigned char *out = malloc(n + 1), *in = malloc(n + 1);
        fill(out, n, rank + k);
        MPI_Request r[2];
        MPI_Status st[2];
        OK(MPI_Irecv(in, (int)n, MPI_BYTE, prev, k, MPI_COMM_WORLD, &r[0]));
        OK(MPI_Isend(out, (int)n, MPI_BYTE, next, k, MPI_COMM_WORLD, &r[1]));
        OK(MPI_Waitall(2, r, st));
        CHECK(r[0] == MPI_REQUEST_NULL && r[1] == MPI_REQUEST_NULL);
        int count;
        OK(MPI_Get_count(&st[0], MPI_BYTE, &count));
        CHECK(count == (int)n && st[0].MPI_SOURCE == prev && st[0].MPI_TAG == k);
        CHECK(same(in, n, prev + k));
        sum += n;
        /* The same with blocking calls, even ranks first (no deadlock on a ring of any size). */
        if (size > 1) {
            if (rank % 2 == 0) {
                OK(MPI_Send(out, (int)n, MPI_BYTE, next, 100 + k, MPI_COMM_WORLD));
                OK(MPI_Recv(in, (int)n, MPI_BYTE, prev, 100 + k, MPI_COMM_WORLD, &st[0]));
            } else {
                OK(MPI_Recv(in, (int)n, MPI_BYTE, prev, 100 + k, MPI_COMM_WORLD, &st[0]));
                OK(MPI_Send(out, (int)n, MPI_BYTE, next, 100 + k, MPI_COMM_WORLD));
            }
            CHECK(same(in, n, prev + k));
        }
        free(out);
        free(in);
    }
    say("ring: %lu bytes a rank, 7 sizes\n", sum);
}

static void wildcards_and_order(int rank, int size) {
    /* Every rank sends 3 numbered messages to rank 0; rank 0 receives with ANY_SOURCE/ANY_TAG and
     * checks that each source's messages arrive in order (non-overtaking). */
    if (rank != 0) {
        for (int i = 0; i < 3; i++) {
            int v[2] = {rank, i};
            OK(MPI_Send(v, 2, MPI_INT, 0, 10 + i, MPI_COMM_WORLD));
        }
    } else {
        int *next = calloc(size, sizeof(int));
        for (int m = 0; m < 3 * (size - 1); m++) {
            int v[2];
            MPI_Status st;
            OK(MPI_Recv(v, 2, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
            CHECK(st.MPI_SOURCE == v[0] && st.MPI_TAG == 10 + v[1]);
            CHECK(v[1] == next[v[0]]);
            next[v[0]]++;
        }
        free(next);
        say("wildcards: %d messages in order\n", 3 * (size - 1));
    }
    /* Before the next phase's sends: a wildcard receive would match them too. */
    OK(MPI_Barrier(MPI_COMM_WORLD));
    /* A later tag received first: matching by tag skips the earlier message, which stays. */
    if (size > 1 && rank == 1) {
        int a = 1, b = 2;
        OK(MPI_Send(&a, 1, MPI_INT, 0, 1, MPI_COMM_WORLD));
        OK(MPI_Send(&b, 1, MPI_INT, 0, 2, MPI_COMM_WORLD));
    } else if (size > 1 && rank == 0) {
        int a = 0, b = 0;
        OK(MPI_Recv(&b, 1, MPI_INT, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        OK(MPI_Recv(&a, 1, MPI_INT, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        CHECK(a == 1 && b == 2);
        say("tag selection: ok\n");
    }
}

static void proc_null(void) {
    int x = 5;
    MPI_Status st;
    OK(MPI_Send(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD));
    OK(MPI_Recv(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &st));
    int count = -1;
    OK(MPI_Get_count(&st, MPI_INT, &count));
    CHECK(x == 5 && st.MPI_SOURCE == MPI_PROC_NULL && st.MPI_TAG == MPI_ANY_TAG && count == 0);
    /* (The status of a non-blocking receive from MPI_PROC_NULL is not checked: MPICH 4.0 leaves
     * its source and tag 0.) */
    MPI_Request r;
    OK(MPI_Irecv(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &r));
    OK(MPI_Wait(&r, &st));
    CHECK(r == MPI_REQUEST_NULL);
    say("proc_null: ok\n");
}

static void modes(int rank, int size) {
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    /* Ready send: the receive is posted before a barrier, the send after it. */
    int in = -1, out = rank;
    MPI_Request r;
    OK(MPI_Irecv(&in, 1, MPI_INT, prev, 7, MPI_COMM_WORLD, &r));
    OK(MPI_Barrier(MPI_COMM_WORLD));
    OK(MPI_Rsend(&out, 1, MPI_INT, next, 7, MPI_COMM_WORLD));
    OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CHECK(in == prev);
    /* Synchronous send, posted receive first. */
    OK(MPI_Irecv(&in, 1, MPI_INT, prev, 8, MPI_COMM_WORLD, &r));
    OK(MPI_Ssend(&out, 1, MPI_INT, next, 8, MPI_COMM_WORLD));
    OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CHECK(in == prev);
    /* Buffered sends through an attached buffer, detached (which waits for them) at the end. */
    int bsize = 3 * (MPI_BSEND_OVERHEAD + 1000);
    char *buf = malloc(bsize);
    OK(MPI_Buffer_attach(buf, bsize));
    unsigned char msg[3][1000];
    for (int i = 0; i < 3; i++) {
        fill(msg[i], sizeof msg[i], rank * 3 + i);
        OK(MPI_Bsend(msg[i], 1000, MPI_BYTE, next, 20 + i, MPI_COMM_WORLD));
        memset(msg[i], 0, sizeof msg[i]); /* buffered: the program may reuse its buffer at once */
    }
    for (int i = 2; i >= 0; i--) {
        unsigned char got[1000];
        OK(MPI_Recv(got, 1000, MPI_BYTE, prev, 20 + i, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        CHECK(same(got, sizeof got, prev * 3 + i));
    }
    void *back;
    int back_size;
    OK(MPI_Buffer_detach(&back, &back_size));
    CHECK(back == buf && back_size == bsize);
    free(buf);
    /* Ibsend, Issend, Irsend complete like the others. */
    MPI_Request rs[2];
    OK(MPI_Irecv(&in, 1, MPI_INT, prev, 9, MPI_COMM_WORLD, &rs[0]));
    OK(MPI_Issend(&out, 1, MPI_INT, next, 9, MPI_COMM_WORLD, &rs[1]));
    MPI_Status sts[2];
    OK(MPI_Waitall(2, rs, sts));
    CHECK(in == prev);
    say("modes: ready, synchronous, buffered ok\n");
}

static void sendrecv(int rank, int size) {
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    double out[4] = {rank, rank + 0.5, -rank, 1e9 + rank}, in[4];
    MPI_Status st;
    OK(MPI_Sendrecv(out, 4, MPI_DOUBLE, next, 3, in, 4, MPI_DOUBLE, prev, 3, MPI_COMM_WORLD, &st));
    CHECK(in[0] == prev && in[3] == 1e9 + prev && st.MPI_SOURCE == prev && st.MPI_TAG == 3);
    int v[3] = {rank, rank * 2, rank * 3};
    OK(MPI_Sendrecv_replace(v, 3, MPI_INT, next, 4, prev, 4, MPI_COMM_WORLD, &st));
    CHECK(v[0] == prev && v[2] == prev * 3);
    say("sendrecv: ok\n");
}

static void probes(int rank, int size) {
    if (size < 2) return;
    if (rank == 1) {
        short s[5] = {1, 2, 3, 4, 5};
        OK(MPI_Send(s, 5, MPI_SHORT, 0, 30, MPI_COMM_WORLD));
        OK(MPI_Send(s, 3, MPI_SHORT, 0, 31, MPI_COMM_WORLD));
        OK(MPI_Send(s, 2, MPI_SHORT, 0, 32, MPI_COMM_WORLD));
    } else if (rank == 0) {
        MPI_Status st;
        OK(MPI_Probe(1, 30, MPI_COMM_WORLD, &st));
        int count, elems;
        OK(MPI_Get_count(&st, MPI_SHORT, &count));
        OK(MPI_Get_elements(&st, MPI_SHORT, &elems));
        CHECK(count == 5 && elems == 5 && st.MPI_SOURCE == 1 && st.MPI_TAG == 30);
        /* A count in a larger type that does not divide: MPI_UNDEFINED. */
        OK(MPI_Get_count(&st, MPI_INT, &count));
        CHECK(count == MPI_UNDEFINED);
        short got[5];
        OK(MPI_Recv(got, 5, MPI_SHORT, 1, 30, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        CHECK(got[4] == 5);
        int flag = 0;
        while (!flag) OK(MPI_Iprobe(1, 31, MPI_COMM_WORLD, &flag, &st));
        CHECK(st.MPI_TAG == 31);
        MPI_Message m;
        OK(MPI_Mprobe(1, 31, MPI_COMM_WORLD, &m, &st));
        OK(MPI_Get_count(&st, MPI_SHORT, &count));
        CHECK(count == 3);
        OK(MPI_Mrecv(got, 3, MPI_SHORT, &m, &st));
        CHECK(m == MPI_MESSAGE_NULL && got[2] == 3);
        flag = 0;
        while (!flag) OK(MPI_Improbe(1, 32, MPI_COMM_WORLD, &flag, &m, &st));
        MPI_Request r;
        OK(MPI_Imrecv(got, 2, MPI_SHORT, &m, &r));
        OK(MPI_Wait(&r, &st));
        OK(MPI_Get_count(&st, MPI_SHORT, &count));
        CHECK(count == 2 && got[1] == 2);
        /* Nothing left: Iprobe says no. */
        OK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
        CHECK(!flag);
        say("probes: ok\n");
    }
    /* A matched probe of MPI_PROC_NULL gives MPI_MESSAGE_NO_PROC. */
    MPI_Message m;
    MPI_Status st;
    OK(MPI_Mprobe(MPI_PROC_NULL, 0, MPI_COMM_WORLD, &m, &st));
    CHECK(m == MPI_MESSAGE_NO_PROC && st.MPI_SOURCE == MPI_PROC_NULL);
    int x;
    OK(MPI_Mrecv(&x, 1, MPI_INT, &m, &st));
    CHECK(m == MPI_MESSAGE_NULL);
}

/* MPI's progress rule: once a send is complete (here a non-blocking one, waited for), its
 * receiver gets it whatever the sender does next, even nothing in MPI for a while. */
static void progress(int rank, int size) {
    if (size != 2) return; /* once is enough, and it sleeps */
    int v = 42;
    if (rank == 0) {
        /* Late, so that the receiver is asleep in its receive by then. */
        struct timespec late = {0, 300000000};
        nanosleep(&late, NULL);
        MPI_Request r;
        OK(MPI_Isend(&v, 1, MPI_INT, 1, 60, MPI_COMM_WORLD, &r));
        OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL); /* no MPI call for a second */
    } else {
        double t0 = MPI_Wtime();
        OK(MPI_Recv(&v, 1, MPI_INT, 0, 60, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        double waited = MPI_Wtime() - t0;
        /* 0.3 s, not the 1.3 s until rank 0 calls MPI again. */
        CHECK(v == 42 && waited < 1.0);
    }
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("progress: a completed send arrives while its sender is busy\n");
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    say("p2p on %d ranks\n", size);
    ring_sizes(rank, size);
    wildcards_and_order(rank, size);
    proc_null();
    modes(rank, size);
    sendrecv(rank, size);
    probes(rank, size);
    progress(rank, size);
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("p2p: ok\n");
    OK(MPI_Finalize());
    return 0;
}
