'use strict';
// How many threads libuv's pool gets. The exchange checks the ID token's signature and signs the
// certificate there (node:crypto's callback forms), so on a small machine the pool's threads and
// the event loop compete for the same cores: with libuv's default of 4 threads on 2 cores, every
// batch of signatures wakes 4 threads that preempt the event loop. With 1 thread there, the bench
// measured 0.69-0.72 of the Go anchor's rate against 0.60 (Intel Xeon) and 1.22 times the rate of
// libuv's default in interleaved rounds (AMD EPYC); docs/performance.md, "libuv's thread pool".
// One core is left to the event loop and the rest to the pool, never more than libuv's default.
//
// libuv reads UV_THREADPOOL_SIZE once, when the pool starts, and an ES module entry point starts
// it while its imports load (file reads on the pool); so this runs from the CommonJS launcher,
// before anything else is loaded.

/** The pool size for a process that has `cores` CPUs to itself: min(4, max(1, cores - 1)). */
function threadPoolSize(cores) {
  const n = Number.isInteger(cores) && cores > 0 ? cores : 1;
  return Math.min(4, Math.max(1, n - 1));
}

/**
 * Sets UV_THREADPOOL_SIZE in env for `cores` CPUs, unless the operator set it (then theirs stands:
 * e.g. a larger pool where slow DNS lookups for the IdP or webhooks must not hold up signatures).
 * Returns the size the process will run with.
 */
function applyThreadPoolSize(env, cores) {
  const set = env.UV_THREADPOOL_SIZE;
  if (set !== undefined && set.trim() !== '') return set;
  env.UV_THREADPOOL_SIZE = String(threadPoolSize(cores));
  return env.UV_THREADPOOL_SIZE;
}

module.exports = { threadPoolSize, applyThreadPoolSize };
