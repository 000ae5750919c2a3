"""The pipeline between sources and the store (issue #4): bounded queue, batching writer,
store-and-forward spool."""
