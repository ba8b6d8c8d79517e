/* The reference for bench/distributed.mjs: MPI_Allreduce from C against the same libmpi, timed as
 * the JS side times distributed.allReduce. Usage: mpirun -np N ./allreduce BYTES... ; rank 0 prints
 * "BYTES SECONDS" per size (the best of several rounds of repeated calls). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  int provided, rank;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (int a = 1; a < argc; a++) {
    long n = atol(argv[a]) / 4;
    float* x = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = 1.0f;
    int reps = n > (1 << 20) ? 5 : 100;
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t = MPI_Wtime();
      for (int i = 0; i < reps; i++) MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      t = (MPI_Wtime() - t) / reps;
      if (t < best) best = t;
    }
    if (rank == 0) printf("%ld %.9f\n", n * 4, best);
    free(x);
  }
  MPI_Finalize();
  return 0;
}
