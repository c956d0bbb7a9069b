/**
 * Cron presets and the crons Airflow maps them to (`utils/dates.py` `cron_presets`). `@once` and
 * `@continuous` are presets too but have timetables of their own (see `parse-schedule.ts`).
 */
export const CRON_PRESETS: Readonly<Record<string, string>> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@quarterly': '0 0 1 */3 *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

/** Every preset `schedule` accepts, for error messages. */
export const ALL_PRESETS: readonly string[] = ['@once', '@continuous', ...Object.keys(CRON_PRESETS)];
