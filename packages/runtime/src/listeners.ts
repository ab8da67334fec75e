/**
 * A typed event with any number of listeners, in the order they were added. Many subscribers are the
 * normal case (every transfer listens to its pool), so there is no leak warning to silence; each
 * subscriber removes itself when done.
 */
export class Listeners<Args extends unknown[]> {
  private readonly listeners = new Set<(...args: Args) => void>();

  add(listener: (...args: Args) => void): void {
    this.listeners.add(listener);
  }

  delete(listener: (...args: Args) => void): void {
    this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  emit(...args: Args): void {
    for (const listener of [...this.listeners]) listener(...args);
  }
}
