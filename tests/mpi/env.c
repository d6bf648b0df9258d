/* The environment: Init_thread and Query_thread, Initialized/Finalized, the version, the
 * processor name, Wtime and Wtick, Alloc_mem/Free_mem, and Abort's absence on a clean run. */
#include "mpitest.h"

int main(int argc, char **argv) {
    int flag = -1;
    OK(MPI_Initialized(&flag));
    CHECK(flag == 0);
    int provided = -1;
    OK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    CHECK(provided >= MPI_THREAD_FUNNELED && provided <= MPI_THREAD_MULTIPLE);
    int q;
    OK(MPI_Query_thread(&q));
    CHECK(q == provided);
    OK(MPI_Initialized(&flag));
    CHECK(flag == 1);
    OK(MPI_Finalized(&flag));
    CHECK(flag == 0);
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int is_main;
    OK(MPI_Is_thread_main(&is_main));
    CHECK(is_main);
    int v, sv;
    OK(MPI_Get_version(&v, &sv));
    CHECK(v == MPI_VERSION && sv == MPI_SUBVERSION);
    say("env on %d ranks, MPI %d.%d\n", size, v, sv);
    char name[MPI_MAX_PROCESSOR_NAME], lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len;
    OK(MPI_Get_processor_name(name, &len));
    CHECK(len > 0 && (int)strlen(name) == len);
    OK(MPI_Get_library_version(lib, &len));
    CHECK(len > 0 && (int)strlen(lib) == len);
    double t0 = MPI_Wtime(), tick = MPI_Wtick();
    CHECK(tick > 0 && tick < 0.01);
    double t1 = MPI_Wtime();
    CHECK(t1 >= t0);
    void *mem;
    OK(MPI_Alloc_mem(1 << 20, MPI_INFO_NULL, &mem));
    memset(mem, rank, 1 << 20);
    /* Memory from Alloc_mem works as a message buffer. */
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    void *in;
    OK(MPI_Alloc_mem(1 << 20, MPI_INFO_NULL, &in));
    OK(MPI_Sendrecv(mem, 1 << 20, MPI_BYTE, next, 0, in, 1 << 20, MPI_BYTE, prev, 0,
                    MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    CHECK(((unsigned char *)in)[12345] == (unsigned char)prev);
    OK(MPI_Free_mem(in));
    OK(MPI_Free_mem(mem));
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("env: ok\n");
    OK(MPI_Finalize());
    OK(MPI_Finalized(&flag));
    CHECK(flag == 1);
    OK(MPI_Initialized(&flag));
    CHECK(flag == 1);
    return 0;
}
