/** Thrown when a setting is missing or invalid; the message names the setting. (Apart from config.ts so that
 * feature settings readers folded into it can use it without an import cycle.) */
export class ConfigError extends Error {
  constructor(readonly setting: string, detail: string) {
    super(`Invalid setting ${setting}: ${detail}`);
    this.name = 'ConfigError';
  }
}
