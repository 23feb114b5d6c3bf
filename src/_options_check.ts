/**
 * The check every options object of the serving side goes through (`serve()`, `chorus-ws/hono`'s
 * `upgrade()` and `serveApp()`, `bunAdapter()`): a typo in an option's name, or a callback that is
 * not a function, is a `TypeError` that names it, never silently ignored. Internal.
 *
 * May import: nothing.
 *
 * @module
 */

/**
 * Checks an options object.
 *
 * @param where What the options are for, as the message names it (`"serve()"`).
 * @param options The options (`undefined`: none).
 * @param names Every option name it takes.
 * @param callbacks The names among them whose value must be a function when given.
 * @throws {TypeError} If `options` is not an object, has an unknown name, or a callback is not a function.
 */
export function checkOptions(
  where: string,
  options: unknown,
  names: readonly string[],
  callbacks: readonly string[] = [],
): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object") throw new TypeError(`${where} options must be an object`);
  for (const name of Object.keys(options)) {
    if (!names.includes(name)) {
      throw new TypeError(`Unknown option ${JSON.stringify(name)} of ${where} (it takes: ${names.join(", ")})`);
    }
  }
  for (const name of callbacks) {
    const value = (options as Record<string, unknown>)[name];
    if (value !== undefined && typeof value !== "function") {
      throw new TypeError(`${where}: ${name} must be a function, not ${value === null ? "null" : typeof value}`);
    }
  }
}
