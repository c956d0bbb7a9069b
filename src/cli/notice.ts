/**
 * A one-line notice on stderr for something the user should know is happening (the embedded
 * server's first initialisation): not a log line, so it shows whatever TSFLOW_LOG_LEVEL says.
 */
export function printNotice(message: string): void {
  console.error(`tsflow: ${message}`);
}

/** A warning the user should act on (no scheduler alive while `--wait` waits). */
export function printWarning(message: string): void {
  console.error(`tsflow: warning: ${message}`);
}
