/* Bad input to the C API (tests/tests/c_api.rs runs it with 2 ranks, plain, under AddressSanitizer
 * and under valgrind): every bad argument of snoo_mpi.h gives its documented SNOO_MPI_ERR_* code,
 * names the call in SNOO_MPI_Error_detail, and disturbs nothing: after each bad call a good message
 * goes each way between the two ranks and is checked byte for byte, and at the end no stray
 * message is left. Both ranks make the same bad calls. Exits non-zero on any failure.
 *
 * `bad_input init-fails CODE`: only calls SNOO_MPI_Init, expects CODE, prints the detail on stdout
 * as "detail: ..." (the test checks what Init printed to stderr, and SNOO_QUIET). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <snoo_mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W SNOO_MPI_COMM_WORLD

static int rank = -1, size = 0, peer = -1, step = 0;

static void fail_detail(void) {
    char d[1024];
    SNOO_MPI_Error_detail(d, sizeof d);
    fprintf(stderr, "  last error detail: %s\n", d);
    exit(1);
}

#define EXPECT(cond)                                                                             \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);                 \
            fail_detail();                                                                       \
        }                                                                                        \
    } while (0)
#define CHECK(call) check_rc((call), SNOO_MPI_SUCCESS, #call, __LINE__)

static void check_rc(int rc, int want, const char *what, int line) {
    if (rc != want) {
        fprintf(stderr, "%s:%d: %s -> %d (%s), expected %d (%s)\n", __FILE__, line, what, rc,
                SNOO_MPI_Error_string(rc), want, SNOO_MPI_Error_string(want));
        fail_detail();
    }
}

/* The detail of the last error names the call that failed ("SNOO_MPI_Send: ..."), and contains
 * `also` if not NULL. */
static void check_detail(const char *what, const char *also, int line) {
    char d[1024];
    int n = SNOO_MPI_Error_detail(d, sizeof d);
    size_t call = strcspn(d, ":");
    if (n <= 0 || n >= (int)sizeof d || (int)strlen(d) != n || strncmp(d, "SNOO_MPI_", 9) != 0 ||
        strncmp(what, d, call) != 0 || (also && !strstr(d, also))) {
        fprintf(stderr, "%s:%d: %s: detail %d \"%s\" does not name the call%s%s\n", __FILE__, line,
                what, n, d, also ? " or lacks " : "", also ? also : "");
        exit(1);
    }
}

static void fill(unsigned char *b, int n, int seed) {
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(i * 131 + seed * 7 + (i >> 8));
}

/* One good message each way between the two ranks, alternately on the inline and the ring path,
 * with a fresh tag; checked byte for byte with its status. */
static void exchange(void) {
    int n = step % 2 ? 100000 : 24, tag = 1000 + step;
    unsigned char *out = malloc(n), *in = malloc(n), *want = malloc(n);
    EXPECT(out && in && want);
    fill(out, n, step * 2 + rank);
    fill(want, n, step * 2 + peer);
    memset(in, 0, n);
    SNOO_MPI_Status st;
    if (rank == 0) {
        CHECK(SNOO_MPI_Send(out, n, peer, tag, SNOO_MPI_BYTE, W));
        CHECK(SNOO_MPI_Recv_status(in, n, peer, SNOO_MPI_BYTE, tag, W, &st));
    } else {
        CHECK(SNOO_MPI_Recv_status(in, n, peer, SNOO_MPI_BYTE, tag, W, &st));
        CHECK(SNOO_MPI_Send(out, n, peer, tag, SNOO_MPI_BYTE, W));
    }
    EXPECT(st.SNOO_MPI_SOURCE == peer && st.SNOO_MPI_TAG == tag && st.count_bytes == n);
    EXPECT(memcmp(in, want, n) == 0);
    free(out);
    free(in);
    free(want);
    step++;
}

/* A bad call: its code, its detail, then a good exchange (nothing lost, nothing stray). */
#define BAD(call, code)                                                                          \
    do {                                                                                         \
        check_rc((call), (code), #call, __LINE__);                                               \
        check_detail(#call, NULL, __LINE__);                                                     \
        exchange();                                                                              \
    } while (0)
/* A bad call when no job is running (no exchange possible); the detail must contain `also`. */
#define BAD0(call, code, also)                                                                   \
    do {                                                                                         \
        check_rc((call), (code), #call, __LINE__);                                               \
        check_detail(#call, (also), __LINE__);                                                   \
    } while (0)

static void every_call_is_not_initialized(void) {
    const char *no = "not initialized";
    int x = 0, flag = 7;
    SNOO_MPI_Request req = 5;
    SNOO_MPI_Status st;
    BAD0(SNOO_MPI_Comm_rank(&x), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Comm_size(&x), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Send(&x, 1, 0, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Recv(&x, 1, 0, SNOO_MPI_INT, 0, W), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Recv_status(&x, 1, 0, SNOO_MPI_INT, 0, W, &st), SNOO_MPI_ERR_NOT_INITIALIZED,
         no);
    EXPECT(st.SNOO_MPI_ERROR == SNOO_MPI_ERR_NOT_INITIALIZED);
    BAD0(SNOO_MPI_Isend(&x, 1, 0, 0, SNOO_MPI_INT, W, &req), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Irecv(&x, 1, 0, SNOO_MPI_INT, 0, W, &req), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    EXPECT(req == 5);
    BAD0(SNOO_MPI_Wait(&req, &st), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Waitall(1, &req, &st), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Waitall(0, NULL, NULL), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Test(&req, &flag, &st), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Probe(0, 0, W, &st), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Iprobe(0, 0, W, &flag, &st), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    BAD0(SNOO_MPI_Finalize(), SNOO_MPI_ERR_NOT_INITIALIZED, no);
    CHECK(SNOO_MPI_Initialized(&flag));
    EXPECT(flag == 0);
    /* Pure functions work without a job. */
    SNOO_MPI_Status eight = {.count_bytes = 8};
    CHECK(SNOO_MPI_Get_count(&eight, SNOO_MPI_INT, &x));
    EXPECT(x == 2);
}

/* SNOO_MPI_Init refused, with the environment variable `var` set to `val` (NULL: unset) for the
 * call, then restored. */
static void init_fails(const char *name, const char *var, const char *val, int code,
                       const char *also) {
    const char *old = var ? getenv(var) : NULL;
    char *saved = old ? strdup(old) : NULL;
    if (var && val) setenv(var, val, 1);
    if (var && !val) unsetenv(var);
    BAD0(SNOO_MPI_Init(name), code, also);
    if (var) {
        if (saved)
            setenv(var, saved, 1);
        else
            unsetenv(var);
    }
    free(saved);
    int flag = 7;
    CHECK(SNOO_MPI_Initialized(&flag));
    EXPECT(flag == 0);
}

static void error_strings_and_detail(void) {
    for (int c = 0; c <= SNOO_MPI_ERR_LASTCODE; c++) {
        const char *s = SNOO_MPI_Error_string(c);
        EXPECT(s && *s && strcmp(s, "unknown error code") != 0);
        for (int d = 0; d < c; d++) EXPECT(strcmp(s, SNOO_MPI_Error_string(d)) != 0);
    }
    EXPECT(strcmp(SNOO_MPI_Error_string(SNOO_MPI_ERR_LASTCODE + 1), "unknown error code") == 0);
    EXPECT(strcmp(SNOO_MPI_Error_string(-1), "unknown error code") == 0);
    EXPECT(strcmp(SNOO_MPI_Error_string(INT_MIN), "unknown error code") == 0);
    /* snprintf-like: full length returned, cut copies NUL-terminated. */
    EXPECT(SNOO_MPI_Send(NULL, 1, 0, 0, SNOO_MPI_INT, W) == SNOO_MPI_ERR_BUFFER);
    char full[512], cut[8];
    int n = SNOO_MPI_Error_detail(full, sizeof full);
    EXPECT(n > 20 && (size_t)n == strlen(full) && strstr(full, "SNOO_MPI_Send: invalid buffer"));
    EXPECT(SNOO_MPI_Error_detail(NULL, 0) == n);
    memset(cut, 'x', sizeof cut);
    EXPECT(SNOO_MPI_Error_detail(cut, sizeof cut) == n);
    EXPECT(strlen(cut) == sizeof cut - 1 && strncmp(cut, full, sizeof cut - 1) == 0);
    EXPECT(SNOO_MPI_Error_detail(cut, 1) == n && cut[0] == '\0');
    EXPECT(SNOO_MPI_Error_detail(NULL, 5) == -1);
    EXPECT(SNOO_MPI_Error_detail(cut, -1) == -1);
    /* A successful call does not clear it. */
    int flag;
    CHECK(SNOO_MPI_Initialized(&flag));
    EXPECT(SNOO_MPI_Error_detail(NULL, 0) == n);
}

static int init_fails_mode(const char *code_arg) {
    int want = atoi(code_arg);
    const char *name = getenv("SNOO_NAME");
    int rc = SNOO_MPI_Init(name ? name : "snoo");
    char d[1024];
    SNOO_MPI_Error_detail(d, sizeof d);
    printf("code: %d\ndetail: %s\n", rc, d);
    return rc == want ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "init-fails") == 0) return init_fails_mode(argv[2]);
    const char *name = getenv("SNOO_NAME");
    if (!name) name = "snoo";
    char d[64] = "x";
    EXPECT(SNOO_MPI_Error_detail(d, sizeof d) == 0 && d[0] == '\0');

    /* Before Init. */
    every_call_is_not_initialized();
    setenv("SNOO_QUIET", "1", 1); /* the refused Inits below print nothing */
    init_fails(NULL, NULL, NULL, SNOO_MPI_ERR_ARG, "NULL pool name");
    init_fails("no-such-pool", NULL, NULL, SNOO_MPI_ERR_NO_POOL, "\"no-such-pool\"");
    init_fails(name, "SNOO_RANK", "first", SNOO_MPI_ERR_ARG, "SNOO_RANK=\"first\"");
    init_fails(name, "SNOO_RANK", "2", SNOO_MPI_ERR_RANK, "invalid rank 2");
    init_fails(name, "SNOO_SIZE", "0", SNOO_MPI_ERR_ARG, "job size 0");
    init_fails(name, "SNOO_SIZE", "1000", SNOO_MPI_ERR_POOL_TOO_SMALL, "snoo-hostd --size");
    init_fails(name, "SNOO_TIMEOUT", "0", SNOO_MPI_ERR_ARG, "SNOO_TIMEOUT");
    init_fails(name, "SNOO_TIMEOUT", "ten", SNOO_MPI_ERR_ARG, "SNOO_TIMEOUT");
    init_fails(name, "SNOO_DEVICE", "carrier-pigeon", SNOO_MPI_ERR_ARG, "SNOO_DEVICE");
    init_fails(name, "SNOO_DEVICE", "socket:/nonexistent/snoo.sock", SNOO_MPI_ERR_NO_POOL,
               "/nonexistent/snoo.sock");
    unsetenv("SNOO_QUIET");

    CHECK(SNOO_MPI_Init(name));
    CHECK(SNOO_MPI_Comm_rank(&rank));
    CHECK(SNOO_MPI_Comm_size(&size));
    EXPECT(size == 2);
    peer = 1 - rank;
    exchange();
    /* (Not quiet: a second Init prints nothing anyway; the test checks stderr.) */
    BAD(SNOO_MPI_Init(name), SNOO_MPI_ERR_ALREADY_INITIALIZED);
    setenv("SNOO_QUIET", "1", 1);
    BAD(SNOO_MPI_Init(NULL), SNOO_MPI_ERR_ARG);
    unsetenv("SNOO_QUIET");
    error_strings_and_detail();

    int x[16] = {0}, found = 7, count = -1;
    SNOO_MPI_Status st;
    SNOO_MPI_Request req = 777, reqs[3];

    /* NULL buffer with count > 0 (NULL with count 0 is fine: see below). */
    BAD(SNOO_MPI_Send(NULL, 1, peer, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_BUFFER);
    BAD(SNOO_MPI_Send(NULL, 100000, peer, 0, SNOO_MPI_BYTE, W), SNOO_MPI_ERR_BUFFER);
    BAD(SNOO_MPI_Recv(NULL, 1, peer, SNOO_MPI_INT, 0, W), SNOO_MPI_ERR_BUFFER);
    BAD(SNOO_MPI_Recv_status(NULL, 2, SNOO_MPI_ANY_SOURCE, SNOO_MPI_INT, SNOO_MPI_ANY_TAG, W,
                             &st),
        SNOO_MPI_ERR_BUFFER);
    EXPECT(st.SNOO_MPI_ERROR == SNOO_MPI_ERR_BUFFER && st.SNOO_MPI_SOURCE == SNOO_MPI_ANY_SOURCE &&
           st.SNOO_MPI_TAG == SNOO_MPI_ANY_TAG && st.count_bytes == 0);
    BAD(SNOO_MPI_Isend(NULL, 1, peer, 0, SNOO_MPI_INT, W, &req), SNOO_MPI_ERR_BUFFER);
    BAD(SNOO_MPI_Irecv(NULL, 3, peer, SNOO_MPI_DOUBLE, 0, W, &req), SNOO_MPI_ERR_BUFFER);
    EXPECT(req == 777); /* untouched by failed calls */

    /* Negative or too large counts (INT_MAX doubles is over 2 GiB; the buffer is never read). */
    BAD(SNOO_MPI_Send(x, -1, peer, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_COUNT);
    BAD(SNOO_MPI_Send(x, INT_MAX, peer, 0, SNOO_MPI_DOUBLE, W), SNOO_MPI_ERR_COUNT);
    BAD(SNOO_MPI_Recv(x, INT_MIN, peer, SNOO_MPI_INT, 0, W), SNOO_MPI_ERR_COUNT);
    BAD(SNOO_MPI_Recv(x, INT_MAX, peer, SNOO_MPI_LONG_LONG, 0, W), SNOO_MPI_ERR_COUNT);
    BAD(SNOO_MPI_Isend(x, -5, peer, 0, SNOO_MPI_INT, W, &req), SNOO_MPI_ERR_COUNT);
    BAD(SNOO_MPI_Irecv(x, -1, peer, SNOO_MPI_INT, 0, W, &req), SNOO_MPI_ERR_COUNT);
    BAD(SNOO_MPI_Waitall(-1, reqs, NULL), SNOO_MPI_ERR_COUNT);

    /* Ranks outside the job; ANY_SOURCE is not a destination. */
    BAD(SNOO_MPI_Send(x, 1, size, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Send(x, 1, SNOO_MPI_ANY_SOURCE, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Send(x, 1, -2, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Send(x, 1, INT_MAX, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Send(x, 1, INT_MIN, 0, SNOO_MPI_INT, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Recv(x, 1, size, SNOO_MPI_INT, 0, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Recv(x, 1, -2, SNOO_MPI_INT, 0, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Recv(x, 1, INT_MIN, SNOO_MPI_INT, SNOO_MPI_ANY_TAG, W), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Isend(x, 1, size, 0, SNOO_MPI_INT, W, &req), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Irecv(x, 1, size + 5, SNOO_MPI_INT, 0, W, &req), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Irecv(x, 1, -7, SNOO_MPI_INT, 0, W, &req), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Probe(size, 0, W, &st), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Probe(-2, SNOO_MPI_ANY_TAG, W, NULL), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Iprobe(size, 0, W, &found, &st), SNOO_MPI_ERR_RANK);
    BAD(SNOO_MPI_Iprobe(-3, 0, W, &found, NULL), SNOO_MPI_ERR_RANK);

    /* Negative tags; ANY_TAG is not a tag to send with. */
    BAD(SNOO_MPI_Send(x, 1, peer, SNOO_MPI_ANY_TAG, SNOO_MPI_INT, W), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Send(x, 1, peer, -2, SNOO_MPI_INT, W), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Send(x, 1, peer, INT_MIN, SNOO_MPI_INT, W), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Recv(x, 1, peer, SNOO_MPI_INT, -2, W), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Recv(x, 1, SNOO_MPI_ANY_SOURCE, SNOO_MPI_INT, INT_MIN, W), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Isend(x, 1, peer, -1, SNOO_MPI_INT, W, &req), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Irecv(x, 1, peer, SNOO_MPI_INT, -2, W, &req), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Probe(peer, -2, W, &st), SNOO_MPI_ERR_TAG);
    BAD(SNOO_MPI_Iprobe(SNOO_MPI_ANY_SOURCE, -5, W, &found, &st), SNOO_MPI_ERR_TAG);

    /* Unknown datatypes (even with count 0). */
    BAD(SNOO_MPI_Send(x, 1, peer, 0, 0, W), SNOO_MPI_ERR_TYPE);
    BAD(SNOO_MPI_Send(x, 1, peer, 0, 14, W), SNOO_MPI_ERR_TYPE);
    BAD(SNOO_MPI_Send(NULL, 0, peer, 0, 999, W), SNOO_MPI_ERR_TYPE);
    BAD(SNOO_MPI_Recv(x, 1, peer, -1, 0, W), SNOO_MPI_ERR_TYPE);
    BAD(SNOO_MPI_Isend(x, 1, peer, 0, 42, W, &req), SNOO_MPI_ERR_TYPE);
    BAD(SNOO_MPI_Irecv(x, 1, peer, INT_MIN, 0, W, &req), SNOO_MPI_ERR_TYPE);
    BAD(SNOO_MPI_Get_count(&st, 0, &count), SNOO_MPI_ERR_TYPE);

    /* Unknown communicators. */
    BAD(SNOO_MPI_Send(x, 1, peer, 0, SNOO_MPI_INT, 0), SNOO_MPI_ERR_COMM);
    BAD(SNOO_MPI_Send(x, 1, peer, 0, SNOO_MPI_INT, 2), SNOO_MPI_ERR_COMM);
    BAD(SNOO_MPI_Recv(x, 1, peer, SNOO_MPI_INT, 0, -1), SNOO_MPI_ERR_COMM);
    BAD(SNOO_MPI_Isend(x, 1, peer, 0, SNOO_MPI_INT, 7, &req), SNOO_MPI_ERR_COMM);
    BAD(SNOO_MPI_Irecv(x, 1, peer, SNOO_MPI_INT, 0, 0, &req), SNOO_MPI_ERR_COMM);
    BAD(SNOO_MPI_Probe(peer, 0, 0, &st), SNOO_MPI_ERR_COMM);
    BAD(SNOO_MPI_Iprobe(peer, 0, 99, &found, &st), SNOO_MPI_ERR_COMM);
    EXPECT(req == 777);

    /* NULL outputs and NULL request pointers. Nothing is sent or posted by a refused call. */
    BAD(SNOO_MPI_Comm_rank(NULL), SNOO_MPI_ERR_ARG);
    BAD(SNOO_MPI_Comm_size(NULL), SNOO_MPI_ERR_ARG);
    BAD(SNOO_MPI_Initialized(NULL), SNOO_MPI_ERR_ARG);
    BAD(SNOO_MPI_Isend(x, 1, peer, 0, SNOO_MPI_INT, W, NULL), SNOO_MPI_ERR_REQUEST);
    BAD(SNOO_MPI_Irecv(x, 1, peer, SNOO_MPI_INT, 0, W, NULL), SNOO_MPI_ERR_REQUEST);
    BAD(SNOO_MPI_Wait(NULL, &st), SNOO_MPI_ERR_REQUEST);
    BAD(SNOO_MPI_Wait(NULL, NULL), SNOO_MPI_ERR_REQUEST);
    BAD(SNOO_MPI_Test(NULL, &found, &st), SNOO_MPI_ERR_REQUEST);
    req = SNOO_MPI_REQUEST_NULL;
    BAD(SNOO_MPI_Test(&req, NULL, NULL), SNOO_MPI_ERR_ARG);
    BAD(SNOO_MPI_Waitall(1, NULL, NULL), SNOO_MPI_ERR_REQUEST);
    BAD(SNOO_MPI_Iprobe(peer, 0, W, NULL, &st), SNOO_MPI_ERR_ARG);
    BAD(SNOO_MPI_Get_count(NULL, SNOO_MPI_INT, &count), SNOO_MPI_ERR_ARG);
    BAD(SNOO_MPI_Get_count(&st, SNOO_MPI_INT, NULL), SNOO_MPI_ERR_ARG);

    /* Requests that never were, or already completed. */
    SNOO_MPI_Request bogus[] = {12345, -1, 1, INT64_MIN, INT64_MAX};
    for (unsigned i = 0; i < sizeof bogus / sizeof *bogus; i++) {
        req = bogus[i];
        BAD(SNOO_MPI_Wait(&req, &st), SNOO_MPI_ERR_REQUEST);
        EXPECT(req == bogus[i] && st.SNOO_MPI_ERROR == SNOO_MPI_ERR_REQUEST);
        BAD(SNOO_MPI_Test(&req, &found, &st), SNOO_MPI_ERR_REQUEST);
    }
    int a[4] = {0}, b[4] = {0}, mine[4] = {rank, rank + 1, rank + 2, rank + 3};
    CHECK(SNOO_MPI_Irecv(a, 4, peer, SNOO_MPI_INT, 5, W, &req));
    SNOO_MPI_Request stale = req;
    EXPECT(req != SNOO_MPI_REQUEST_NULL);
    CHECK(SNOO_MPI_Send(mine, 4, peer, 5, SNOO_MPI_INT, W));
    CHECK(SNOO_MPI_Wait(&req, &st));
    EXPECT(req == SNOO_MPI_REQUEST_NULL && a[0] == peer && a[3] == peer + 3);
    BAD(SNOO_MPI_Wait(&stale, &st), SNOO_MPI_ERR_REQUEST);
    BAD(SNOO_MPI_Test(&stale, &found, NULL), SNOO_MPI_ERR_REQUEST);
    /* REQUEST_NULL is fine, with the empty status. */
    st.SNOO_MPI_SOURCE = 5;
    CHECK(SNOO_MPI_Wait(&req, &st));
    EXPECT(st.SNOO_MPI_SOURCE == SNOO_MPI_ANY_SOURCE && st.SNOO_MPI_TAG == SNOO_MPI_ANY_TAG &&
           st.count_bytes == 0 && st.SNOO_MPI_ERROR == SNOO_MPI_SUCCESS);
    found = 0;
    CHECK(SNOO_MPI_Test(&req, &found, NULL));
    EXPECT(found == 1);
    /* A stale handle never names a newer request. */
    CHECK(SNOO_MPI_Irecv(b, 4, peer, SNOO_MPI_INT, 6, W, &req));
    BAD(SNOO_MPI_Wait(&stale, NULL), SNOO_MPI_ERR_REQUEST);
    CHECK(SNOO_MPI_Send(mine, 4, peer, 6, SNOO_MPI_INT, W));
    CHECK(SNOO_MPI_Wait(&req, NULL));
    EXPECT(b[0] == peer && b[3] == peer + 3);
    /* Waitall with a bad handle among good ones: the good ones complete, the error is returned. */
    CHECK(SNOO_MPI_Irecv(a, 4, peer, SNOO_MPI_INT, 8, W, &reqs[0]));
    reqs[1] = 999999;
    CHECK(SNOO_MPI_Isend(mine, 4, peer, 8, SNOO_MPI_INT, W, &reqs[2]));
    SNOO_MPI_Status sts[3];
    BAD(SNOO_MPI_Waitall(3, reqs, sts), SNOO_MPI_ERR_REQUEST);
    EXPECT(reqs[0] == SNOO_MPI_REQUEST_NULL && reqs[2] == SNOO_MPI_REQUEST_NULL);
    EXPECT(sts[0].SNOO_MPI_SOURCE == peer && sts[0].SNOO_MPI_TAG == 8 && a[1] == peer + 1);
    EXPECT(sts[1].SNOO_MPI_ERROR == SNOO_MPI_ERR_REQUEST);
    check_detail("SNOO_MPI_Waitall", "request 1", __LINE__);

    /* Truncation: the status still says what arrived; the stream after it is intact. */
    int ten[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, four[4] = {0};
    CHECK(SNOO_MPI_Send(ten, 10, peer, 9, SNOO_MPI_INT, W));
    BAD(SNOO_MPI_Recv_status(four, 4, peer, SNOO_MPI_INT, 9, W, &st), SNOO_MPI_ERR_TRUNCATE);
    EXPECT(st.SNOO_MPI_SOURCE == peer && st.SNOO_MPI_TAG == 9 && st.count_bytes == 16);
    EXPECT(st.SNOO_MPI_ERROR == SNOO_MPI_ERR_TRUNCATE && four[3] == 3);
    CHECK(SNOO_MPI_Get_count(&st, SNOO_MPI_INT, &count));
    EXPECT(count == 4);
    check_detail("SNOO_MPI_Recv", "40 bytes arrived for a 16-byte buffer", __LINE__);
    unsigned char *big = malloc(200000), *small = malloc(1000);
    EXPECT(big && small);
    fill(big, 200000, 3);
    CHECK(SNOO_MPI_Irecv(small, 1000, SNOO_MPI_ANY_SOURCE, SNOO_MPI_BYTE, SNOO_MPI_ANY_TAG, W,
                         &req));
    CHECK(SNOO_MPI_Send(big, 200000, peer, 10, SNOO_MPI_BYTE, W));
    BAD(SNOO_MPI_Wait(&req, &st), SNOO_MPI_ERR_TRUNCATE);
    EXPECT(req == SNOO_MPI_REQUEST_NULL && st.SNOO_MPI_SOURCE == peer && st.SNOO_MPI_TAG == 10);
    EXPECT(st.count_bytes == 1000 && memcmp(small, big, 1000) == 0);
    free(big);
    free(small);

    /* A receive or probe only this rank could satisfy, with nothing sent to self: refused at
     * once, and it leaves nothing posted (the next send to self is received normally). */
    BAD(SNOO_MPI_Recv(x, 1, rank, SNOO_MPI_INT, 3, W), SNOO_MPI_ERR_ARG);
    BAD(SNOO_MPI_Probe(rank, SNOO_MPI_ANY_TAG, W, &st), SNOO_MPI_ERR_ARG);
    CHECK(SNOO_MPI_Irecv(x, 1, rank, SNOO_MPI_INT, 3, W, &req));
    BAD(SNOO_MPI_Wait(&req, &st), SNOO_MPI_ERR_ARG);
    CHECK(SNOO_MPI_Send(mine, 2, rank, 3, SNOO_MPI_INT, W));
    CHECK(SNOO_MPI_Recv_status(x, 16, rank, SNOO_MPI_INT, 3, W, &st));
    EXPECT(st.SNOO_MPI_SOURCE == rank && st.count_bytes == 8 && x[1] == rank + 1);

    /* Good edge cases: empty messages with a NULL buffer, the highest tag, NULL statuses. */
    CHECK(SNOO_MPI_Send(NULL, 0, peer, INT_MAX, SNOO_MPI_DOUBLE, W));
    CHECK(SNOO_MPI_Probe(peer, INT_MAX, W, NULL));
    CHECK(SNOO_MPI_Recv_status(NULL, 0, peer, SNOO_MPI_DOUBLE, INT_MAX, W, &st));
    EXPECT(st.SNOO_MPI_TAG == INT_MAX && st.count_bytes == 0);
    CHECK(SNOO_MPI_Isend(NULL, 0, rank, 0, SNOO_MPI_INT, W, &req));
    CHECK(SNOO_MPI_Wait(&req, NULL));
    CHECK(SNOO_MPI_Recv(NULL, 0, rank, SNOO_MPI_INT, 0, W));
    exchange();

    /* Nothing stray: every refused send sent nothing (all the peer's messages before its last
     * exchange message have been read, in order). */
    found = 7;
    CHECK(SNOO_MPI_Iprobe(SNOO_MPI_ANY_SOURCE, SNOO_MPI_ANY_TAG, W, &found, &st));
    EXPECT(found == 0);

    CHECK(SNOO_MPI_Finalize());
    /* After Finalize. */
    every_call_is_not_initialized();
    setenv("SNOO_QUIET", "1", 1);
    BAD0(SNOO_MPI_Init(name), SNOO_MPI_ERR_ARG, "after SNOO_MPI_Finalize");
    printf("rank %d of %d: ok after %d exchanges\n", rank, size, step);
    return 0;
}
