/*
 * How a resumed task learns what its trigger did: the two names the SDK reads and the database
 * writes (src/db/triggers.ts and the timeout sweep pass them as bound parameters). A leaf module, so
 * the engine can import them without loading the SDK's operators.
 */

/** The method name a failed or timed-out trigger resumes with (Airflow's `__fail__`). */
export const FAIL_METHOD = '__fail__';

/** The key of `next_kwargs` that carries the trigger's event to the resumed method. */
export const EVENT_KEY = 'event';
