"""VGG feature extractors and the engine's fused per-layer loss nodes (numba kernels, the CPU allocator)."""
