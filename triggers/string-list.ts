import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';

/** A trigger field that is a list of strings (optionally from `vocabulary`); a copy of it, or an error naming the field and the value. */
export function stringList(value: unknown, label: string, nonEmpty: boolean, vocabulary?: readonly string[]): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v === '')) {
    throw new InvalidTriggerKwargsError(`${label} must be an array of non-empty strings, got ${JSON.stringify(value)}`);
  }
  if (nonEmpty && value.length === 0) throw new InvalidTriggerKwargsError(`${label} must name at least one`);
  const bad = vocabulary ? value.find((v: string) => !vocabulary.includes(v)) : undefined;
  if (bad !== undefined) throw new InvalidTriggerKwargsError(`${label} has '${bad}', which is not one of ${vocabulary?.join(', ')}`);
  return [...(value as string[])];
}
