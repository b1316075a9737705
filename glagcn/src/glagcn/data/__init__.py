"""Dataset formats (Human3.6M, HumanEva-I, MPI-INF-3DHP), batching and the synthetic generator."""
