/** The part of a tap test the helpers need: register cleanup right after creation. */
export interface Teardown {
  teardown (fn: () => unknown): void
}
