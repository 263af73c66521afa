/** Route options for @fastify/rate-limit (registered in app.ts, per route): at most `max` a minute per client IP. */
export function perMinute(max: number) {
  return { config: { rateLimit: { max, timeWindow: 60_000 } } };
}
