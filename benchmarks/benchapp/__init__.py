"""Models for the benchmarks: the same table with and without the publishing mixin."""
