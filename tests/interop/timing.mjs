// Time limits of the interop tests. Every bound a test sets is multiplied by NESTC_TEST_TIMEOUT_FACTOR
// (CMake sets it for each test: 1 normally, more for the sanitizer and valgrind passes), and by at least 6
// under a wrapping tool (NESTC_WRAP: valgrind makes every nestc process many times slower), so a slow or
// loaded machine makes the tests slower, not red. Waits for readiness end as soon as the thing is ready.
export const FACTOR = Math.max(Number(process.env.NESTC_TEST_TIMEOUT_FACTOR) || 1, process.env.NESTC_WRAP ? 6 : 1);
export const scaled = (ms) => Math.round(ms * FACTOR);
