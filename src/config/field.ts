/** One variable checked: whatever its parser throws becomes a ConfigError naming it (and the item of a list). */
import { ConfigError } from '../errors.js'

export function field<T> (name: string, parse: () => T, item?: string): T {
  try {
    return parse()
  } catch (err) {
    throw new ConfigError(`${name}: ${item === undefined ? '' : `"${item}": `}${(err as Error).message}`)
  }
}
