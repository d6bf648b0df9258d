/* Info objects: create, set (a new key and a replaced value), get, get_valuelen, get_string
 * (whole and truncated), nkeys and nthkey in the order the keys were set, delete, dup (an
 * independent copy), free; MPI_INFO_ENV, MPI_Info_create_env and MPI_Comm_get_info give objects
 * that can be read and freed; infos pass to MPI_Alloc_mem and MPI_Comm_split_type; and the error
 * classes of a missing key, an over-long key or value, a key number out of range and
 * MPI_INFO_NULL, after which nothing is lost. */
#include "mpitest.h"

static int has(MPI_Info info, const char *key, const char *want) {
    char v[MPI_MAX_INFO_VAL + 1];
    int flag = -1;
    OK(MPI_Info_get(info, key, MPI_MAX_INFO_VAL, v, &flag));
    if (!want) return flag == 0;
    return flag == 1 && strcmp(v, want) == 0;
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    /* Info calls name no communicator: their errors go to MPI_COMM_SELF's handler (MPI 4), or
     * MPI_COMM_WORLD's. */
    OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    OK(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));

    MPI_Info info;
    OK(MPI_Info_create(&info));
    CHECK(info != MPI_INFO_NULL);
    int n = -1;
    OK(MPI_Info_get_nkeys(info, &n));
    CHECK(n == 0);
    char mine[32];
    snprintf(mine, sizeof mine, "rank-%d", rank);
    OK(MPI_Info_set(info, "zeta", "first"));
    OK(MPI_Info_set(info, "alpha", mine));
    OK(MPI_Info_set(info, "zeta", "second value"));
    OK(MPI_Info_get_nkeys(info, &n));
    CHECK(n == 2);
    char key[MPI_MAX_INFO_KEY + 1];
    OK(MPI_Info_get_nthkey(info, 0, key));
    CHECK(strcmp(key, "zeta") == 0);
    OK(MPI_Info_get_nthkey(info, 1, key));
    CHECK(strcmp(key, "alpha") == 0);
    CHECK(has(info, "zeta", "second value"));
    CHECK(has(info, "alpha", mine));
    CHECK(has(info, "beta", NULL));

    /* (A value longer than MPI_Info_get's valuelen: MPI truncates it; MPICH also returns
     * MPI_ERR_INFO_VALUE, SNOO does not. Not checked.) */
    int flag = -1;
    int len = -1;
    OK(MPI_Info_get_valuelen(info, "zeta", &len, &flag));
    CHECK(flag == 1 && len == 12);
    OK(MPI_Info_get_valuelen(info, "nothing", &len, &flag));
    CHECK(flag == 0);

    /* MPI_Info_get_string: the length with its NUL, and the value when the buffer holds it. */
    char one[1] = {'x'};
    int buflen = 1;
    OK(MPI_Info_get_string(info, "zeta", &buflen, one, &flag));
    CHECK(flag == 1 && buflen == 13 && one[0] == 0);
    char whole[32];
    buflen = sizeof whole;
    OK(MPI_Info_get_string(info, "zeta", &buflen, whole, &flag));
    CHECK(flag == 1 && buflen == 13 && strcmp(whole, "second value") == 0);
    buflen = 4;
    OK(MPI_Info_get_string(info, "zeta", &buflen, whole, &flag));
    CHECK(flag == 1 && buflen == 13 && strcmp(whole, "sec") == 0);

    /* A duplicate is a copy: changing one leaves the other. */
    MPI_Info dup;
    OK(MPI_Info_dup(info, &dup));
    OK(MPI_Info_set(dup, "zeta", "changed"));
    OK(MPI_Info_delete(dup, "alpha"));
    CHECK(has(info, "zeta", "second value") && has(info, "alpha", mine));
    CHECK(has(dup, "zeta", "changed") && has(dup, "alpha", NULL));
    OK(MPI_Info_get_nkeys(dup, &n));
    CHECK(n == 1);

    /* Error classes. */
    CHECK(mt_class(MPI_Info_delete(dup, "alpha")) == MPI_ERR_INFO_NOKEY);
    char longkey[MPI_MAX_INFO_KEY + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    CHECK(mt_class(MPI_Info_set(dup, longkey, "v")) == MPI_ERR_INFO_KEY);
    static char longval[MPI_MAX_INFO_VAL + 2];
    memset(longval, 'v', sizeof longval - 1);
    CHECK(mt_class(MPI_Info_set(dup, "k", longval)) == MPI_ERR_INFO_VALUE);
    CHECK(mt_class(MPI_Info_get_nthkey(dup, 1, key)) == MPI_ERR_ARG);
    /* MPI_INFO_NULL: MPI_ERR_ARG in MPICH (MPI_ERR_INFO is for other invalid handles). */
    CHECK(mt_class(MPI_Info_get_nkeys(MPI_INFO_NULL, &n)) == MPI_ERR_ARG);
    CHECK(mt_class(MPI_Info_set(MPI_INFO_NULL, "k", "v")) == MPI_ERR_ARG);
    /* Nothing was lost by the failed calls. */
    OK(MPI_Info_get_nkeys(dup, &n));
    CHECK(n == 1 && has(dup, "zeta", "changed"));

    OK(MPI_Info_free(&dup));
    CHECK(dup == MPI_INFO_NULL);

    /* The environment's info, a copy of it, and a communicator's info in use. */
    OK(MPI_Info_get_nkeys(MPI_INFO_ENV, &n));
    CHECK(n >= 0);
    MPI_Info env;
    OK(MPI_Info_create_env(argc, argv, &env));
    OK(MPI_Info_get_nkeys(env, &n));
    CHECK(n >= 0);
    OK(MPI_Info_free(&env));
    MPI_Info used;
    OK(MPI_Comm_set_info(MPI_COMM_WORLD, info));
    OK(MPI_Comm_get_info(MPI_COMM_WORLD, &used));
    CHECK(used != MPI_INFO_NULL);
    OK(MPI_Info_get_nkeys(used, &n));
    CHECK(n >= 0);
    OK(MPI_Info_free(&used));

    /* Infos where calls take them. */
    void *mem;
    OK(MPI_Alloc_mem(4096, info, &mem));
    memset(mem, rank, 4096);
    OK(MPI_Free_mem(mem));
    MPI_Comm shared;
    OK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, info, &shared));
    int ssize;
    OK(MPI_Comm_size(shared, &ssize));
    CHECK(ssize >= 1 && ssize <= size);
    OK(MPI_Comm_free(&shared));

    /* Every rank's info held its own value. */
    char got[MPI_MAX_INFO_VAL + 1];
    OK(MPI_Info_get(info, "alpha", MPI_MAX_INFO_VAL, got, &flag));
    int ok = flag == 1 && strcmp(got, mine) == 0, all = 0;
    OK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    CHECK(all == size);
    OK(MPI_Info_free(&info));
    CHECK(info == MPI_INFO_NULL);
    say("info on %d ranks\n", size);
    say("info: ok\n");
    OK(MPI_Finalize());
    return 0;
}
