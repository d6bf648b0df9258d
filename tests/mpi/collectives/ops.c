/* Reductions: every predefined operation on the types it is defined for (MINLOC and MAXLOC on
 * the pair types), user operations commutative and not, a derived datatype with a predefined
 * operation, counts 0 to 4 MiB, every root, and Bcast, Allgather and Alltoall of 4 MiB. Values
 * are small integers, so every sum and product is exact in every type; references are computed
 * here. Rank 0 prints one line per group of checks. */
#include "../mpitest.h"

static int rank, size;

/* Element i of rank r's contribution: small, varied, non-zero. */
static long v(int r, int i) { return (r * 7 + i * 3) % 11 + 1; }

/* The reference reduction of v(·, i) over all ranks. */
static long ref(MPI_Op op, int i) {
    long a = v(0, i);
    for (int r = 1; r < size; r++) {
        long b = v(r, i);
        if (op == MPI_SUM) a += b;
        else if (op == MPI_PROD) a *= b;
        else if (op == MPI_MAX) a = a > b ? a : b;
        else if (op == MPI_MIN) a = a < b ? a : b;
        else if (op == MPI_LAND) a = a && (b & 1);
        else if (op == MPI_LOR) a = a || (b & 1);
        else if (op == MPI_LXOR) a = (!!a) != (!!(b & 1));
        else if (op == MPI_BAND) a &= b;
        else if (op == MPI_BOR) a |= b;
        else if (op == MPI_BXOR) a ^= b;
    }
    return a;
}

/* Logical operations see v & 1 (so both truth values occur), rank 0's included. */
static int logical(MPI_Op op) { return op == MPI_LAND || op == MPI_LOR || op == MPI_LXOR; }

static long ref_l(MPI_Op op, int i) {
    if (!logical(op)) return ref(op, i);
    long a = v(0, i) & 1;
    for (int r = 1; r < size; r++) {
        long b = v(r, i) & 1;
        if (op == MPI_LAND) a = a && b;
        else if (op == MPI_LOR) a = a || b;
        else a = (!!a) != (!!b);
    }
    return a;
}

#define TRY_TYPE(CT, MT, OPS, NOPS)                                                          \
    do {                                                                                     \
        CT s[17], o[17];                                                                     \
        for (int k = 0; k < NOPS; k++) {                                                     \
            MPI_Op op = OPS[k];                                                              \
            for (int i = 0; i < 17; i++) s[i] = (CT)(logical(op) ? (v(rank, i) & 1) : v(rank, i)); \
            for (int i = 0; i < 17; i++) o[i] = (CT)-1;                                      \
            OK(MPI_Allreduce(s, o, 17, MT, op, MPI_COMM_WORLD));                             \
            for (int i = 0; i < 17; i++) CHECK(o[i] == (CT)ref_l(op, i));                    \
            int root = size - 1;                                                             \
            for (int i = 0; i < 17; i++) o[i] = (CT)-1;                                      \
            OK(MPI_Reduce(s, o, 17, MT, op, root, MPI_COMM_WORLD));                          \
            if (rank == root)                                                                \
                for (int i = 0; i < 17; i++) CHECK(o[i] == (CT)ref_l(op, i));                \
            OK(MPI_Scan(s, o, 17, MT, op, MPI_COMM_WORLD));                                  \
        }                                                                                    \
    } while (0)

static void predefined(void) {
    /* Products stay exact up to 5 ranks: at most 11^5. */
    MPI_Op arith[] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN};
    MPI_Op logic[] = {MPI_LAND, MPI_LOR, MPI_LXOR};
    MPI_Op bits[] = {MPI_BAND, MPI_BOR, MPI_BXOR};
    MPI_Op ints[] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN, MPI_LAND, MPI_LOR, MPI_LXOR,
                     MPI_BAND, MPI_BOR, MPI_BXOR};
    TRY_TYPE(int, MPI_INT, ints, 10);
    TRY_TYPE(unsigned, MPI_UNSIGNED, ints, 10);
    TRY_TYPE(long, MPI_LONG, ints, 10);
    TRY_TYPE(unsigned long, MPI_UNSIGNED_LONG, ints, 10);
    TRY_TYPE(long long, MPI_LONG_LONG, ints, 10);
    TRY_TYPE(unsigned long long, MPI_UNSIGNED_LONG_LONG, ints, 10);
    TRY_TYPE(short, MPI_SHORT, arith, 3); /* 11^5 overflows a short: no PROD */
    TRY_TYPE(short, MPI_SHORT, logic, 3);
    TRY_TYPE(short, MPI_SHORT, bits, 3);
    TRY_TYPE(unsigned char, MPI_UNSIGNED_CHAR, bits, 3);
    TRY_TYPE(signed char, MPI_SIGNED_CHAR, logic, 3);
    TRY_TYPE(float, MPI_FLOAT, arith, 4);
    TRY_TYPE(double, MPI_DOUBLE, arith, 4);
    TRY_TYPE(long double, MPI_LONG_DOUBLE, arith, 4);
    if (rank == 0) printf("predefined operations ok\n");
}

/* MINLOC and MAXLOC: values repeat across ranks, so ties pick the smallest index. */
#define TRY_PAIR(ST, VT, MT)                                                                 \
    do {                                                                                     \
        ST s[9], o[9];                                                                       \
        for (int k = 0; k < 2; k++) {                                                        \
            MPI_Op op = k ? MPI_MAXLOC : MPI_MINLOC;                                         \
            for (int i = 0; i < 9; i++) {                                                    \
                s[i].val = (VT)((rank * 5 + i) % 3);                                         \
                s[i].loc = rank * 10 + i;                                                    \
            }                                                                                \
            OK(MPI_Allreduce(s, o, 9, MT, op, MPI_COMM_WORLD));                              \
            for (int i = 0; i < 9; i++) {                                                    \
                VT best = (VT)((0 * 5 + i) % 3);                                             \
                int loc = i;                                                                 \
                for (int r = 1; r < size; r++) {                                             \
                    VT x = (VT)((r * 5 + i) % 3);                                            \
                    if (k ? x > best : x < best) {                                           \
                        best = x;                                                            \
                        loc = r * 10 + i;                                                    \
                    }                                                                        \
                }                                                                            \
                CHECK(o[i].val == best && o[i].loc == loc);                                  \
            }                                                                                \
        }                                                                                    \
    } while (0)

struct di { double val; int loc; };
struct fi { float val; int loc; };
struct li { long val; int loc; };
struct si { short val; int loc; };
struct ii { int val; int loc; };
struct ldi { long double val; int loc; };

static void pairs(void) {
    TRY_PAIR(struct ii, int, MPI_2INT);
    TRY_PAIR(struct di, double, MPI_DOUBLE_INT);
    TRY_PAIR(struct fi, float, MPI_FLOAT_INT);
    TRY_PAIR(struct li, long, MPI_LONG_INT);
    TRY_PAIR(struct si, short, MPI_SHORT_INT);
    TRY_PAIR(struct ldi, long double, MPI_LONG_DOUBLE_INT);
    if (rank == 0) printf("minloc and maxloc ok\n");
}

/* A commutative user operation (sum of ints, counting its calls) and a non-commutative one
 * (string-like: keeps the left operand's first digit and appends, as a base-16 number). */
static int calls;
static void usum(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    calls++;
    for (int i = 0; i < *len; i++) ((int *)inout)[i] += ((int *)in)[i];
}
/* inout = in ∘ inout with a ∘ b = a * 16^digits(b) + b: concatenation of hex digits. */
static void concat(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    for (int i = 0; i < *len; i++) {
        long long a = ((long long *)in)[i], b = ((long long *)inout)[i], m = 1;
        for (long long t = b; t > 0; t /= 16) m *= 16;
        ((long long *)inout)[i] = a * m + b;
    }
}

static void user(void) {
    MPI_Op sum, cat;
    OK(MPI_Op_create(usum, 1, &sum));
    OK(MPI_Op_create(concat, 0, &cat));
    int s[5], o[5];
    for (int i = 0; i < 5; i++) s[i] = rank + i;
    OK(MPI_Allreduce(s, o, 5, MPI_INT, sum, MPI_COMM_WORLD));
    for (int i = 0; i < 5; i++) CHECK(o[i] == size * (size - 1) / 2 + size * i);
    /* A commutative operation on more than one rank was called somewhere. */
    int any = 0;
    OK(MPI_Allreduce(&calls, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    CHECK(size == 1 || any > 0);
    long long a[3], b[3];
    for (int i = 0; i < 3; i++) a[i] = rank + 1 + i; /* hex digits 1..7 */
    for (int root = 0; root < size; root++) {
        OK(MPI_Reduce(a, b, 3, MPI_LONG_LONG, cat, root, MPI_COMM_WORLD));
        if (rank == root)
            for (int i = 0; i < 3; i++) {
                long long want = 0;
                for (int r = 0; r < size; r++) want = want * 16 + r + 1 + i;
                CHECK(b[i] == want);
            }
    }
    OK(MPI_Scan(a, b, 3, MPI_LONG_LONG, cat, MPI_COMM_WORLD));
    for (int i = 0; i < 3; i++) {
        long long want = 0;
        for (int r = 0; r <= rank; r++) want = want * 16 + r + 1 + i;
        CHECK(b[i] == want);
    }
    OK(MPI_Op_free(&sum));
    OK(MPI_Op_free(&cat));
    CHECK(sum == MPI_OP_NULL && cat == MPI_OP_NULL);
    if (rank == 0) printf("user operations ok\n");
}

/* User operations on derived datatypes (MPICH allows predefined operations on predefined types
 * only): a sum over a vector type (4 ints at stride 2, extent 7 ints), which sees the gaps in
 * place, and a maximum over a contiguous type of 3 doubles. */
static void vsum(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    for (int e = 0; e < *len; e++)
        for (int j = 0; j < 4; j++) ((int *)inout)[e * 7 + j * 2] += ((int *)in)[e * 7 + j * 2];
}
static void dmax3(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    for (int i = 0; i < *len * 3; i++) {
        double a = ((double *)in)[i], *b = &((double *)inout)[i];
        if (a > *b) *b = a;
    }
}

static void derived(void) {
    MPI_Datatype every2, three;
    OK(MPI_Type_vector(4, 1, 2, MPI_INT, &every2));
    OK(MPI_Type_commit(&every2));
    OK(MPI_Type_contiguous(3, MPI_DOUBLE, &three));
    OK(MPI_Type_commit(&three));
    MPI_Op sum, max;
    OK(MPI_Op_create(vsum, 1, &sum));
    OK(MPI_Op_create(dmax3, 1, &max));
    int s[16], o[16];
    for (int i = 0; i < 16; i++) {
        s[i] = rank * 100 + i;
        o[i] = -5;
    }
    OK(MPI_Allreduce(s, o, 2, every2, sum, MPI_COMM_WORLD));
    for (int i = 0; i < 16; i++) {
        /* Element 0: ints 0, 2, 4, 6; element 1 (one extent on): 7, 9, 11, 13. */
        int in = (i <= 6 && i % 2 == 0) || (i >= 7 && i <= 13 && (i - 7) % 2 == 0);
        if (in) CHECK(o[i] == 100 * size * (size - 1) / 2 + size * i);
        else CHECK(o[i] == -5);
    }
    double d[6], e[6];
    for (int i = 0; i < 6; i++) d[i] = rank + i * 0.5;
    for (int root = 0; root < size; root++) {
        OK(MPI_Reduce(d, e, 2, three, max, root, MPI_COMM_WORLD));
        if (rank == root)
            for (int i = 0; i < 6; i++) CHECK(e[i] == size - 1 + i * 0.5);
    }
    OK(MPI_Op_free(&sum));
    OK(MPI_Op_free(&max));
    OK(MPI_Type_free(&every2));
    OK(MPI_Type_free(&three));
    if (rank == 0) printf("derived datatypes ok\n");
}

/* 0 B to 4 MiB: Allreduce, Reduce at every root, Bcast from every root, Allgather, Alltoall. */
static void sizes(void) {
    static const int counts[] = {0, 1, 1023, 65536, 1 << 20};
    int *s = malloc(sizeof(int) << 20), *o = malloc(sizeof(int) << 20);
    for (int k = 0; k < 5; k++) {
        int n = counts[k];
        for (int i = 0; i < n; i++) s[i] = rank + (i & 1023);
        OK(MPI_Allreduce(s, o, n, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        for (int i = 0; i < n; i++) CHECK(o[i] == size * (size - 1) / 2 + size * (i & 1023));
        for (int root = 0; root < size; root++) {
            OK(MPI_Reduce(s, o, n, MPI_INT, MPI_MAX, root, MPI_COMM_WORLD));
            if (rank == root)
                for (int i = 0; i < n; i++) CHECK(o[i] == size - 1 + (i & 1023));
            for (int i = 0; i < n; i++) o[i] = rank == root ? i ^ root : -1;
            OK(MPI_Bcast(o, n, MPI_INT, root, MPI_COMM_WORLD));
            for (int i = 0; i < n; i++) CHECK(o[i] == (i ^ root));
        }
        int per = n / size;
        for (int i = 0; i < per; i++) s[i] = rank * 3 + i;
        OK(MPI_Allgather(s, per, MPI_INT, o, per, MPI_INT, MPI_COMM_WORLD));
        for (int r = 0; r < size; r++)
            for (int i = 0; i < per; i++) CHECK(o[r * per + i] == r * 3 + i);
        for (int d = 0; d < size; d++)
            for (int i = 0; i < per; i++) s[d * per + i] = rank * 1000 + d * 7 + i;
        OK(MPI_Alltoall(s, per, MPI_INT, o, per, MPI_INT, MPI_COMM_WORLD));
        for (int r = 0; r < size; r++)
            for (int i = 0; i < per; i++) CHECK(o[r * per + i] == r * 1000 + rank * 7 + i);
        if (rank == 0) printf("%d bytes ok\n", n * (int)sizeof(int));
    }
    free(s);
    free(o);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    predefined();
    pairs();
    user();
    derived();
    sizes();
    if (rank == 0) printf("ops: ok\n");
    MPI_Finalize();
    return 0;
}
